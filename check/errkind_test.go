package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	live := context.Background()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want Kind
	}{
		{"refused", live, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, KindConnect},
		{"dial timeout", live, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, KindTimeout},
		{"deadline", live, fmt.Errorf("get: %w", context.DeadlineExceeded), KindTimeout},
		{"reset", live, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, KindReset},
		{"eof", live, fmt.Errorf("readLoop: %w", io.EOF), KindReset},
		{"unexpected eof", live, io.ErrUnexpectedEOF, KindReset},
		{"canceled by user", dead, fmt.Errorf("x: %w", context.Canceled), KindCanceled},
		{"canceled, run alive", live, context.Canceled, KindOther},
		{"other", live, errors.New("malformed HTTP response"), KindOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.ctx, tc.err); got != tc.want {
				t.Fatalf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if Kind(99).String() != "unknown" || KindStatus5xx.String() != "status_5xx" {
		t.Fatal("kind names")
	}
	for code, want := range map[int]Kind{200: -1, 302: -1, 404: KindStatus4xx, 502: KindStatus5xx} {
		if got := statusKind(code); got != want {
			t.Errorf("statusKind(%d) = %v", code, got)
		}
	}
}
