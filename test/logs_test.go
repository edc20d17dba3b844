package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherproxy/tether/test/fleet"
)

// TestLogsStrictJSON runs a 2-node fleet at debug level through a start,
// proxied requests, a clean restart of one node (disk mode) and a clean
// stop of both at once, then reads every log line as strict JSON: one
// object per line, no key twice at any depth (strict parsers reject
// those), durations with their unit in the key, no internal function
// names in the recovery line, the routine refutation of a restarted node
// at debug, and no warning from a clean stop.
func TestLogsStrictJSON(t *testing.T) {
	_, spec := backends(t, "log-a", "log-b")
	f := fleet.Start(t, bin, fleet.Options{Nodes: 2, Backends: spec, DataDir: true,
		Env: map[string]string{"TETHER_LOG_LEVEL": "debug"}})
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for i := range 5 {
		for _, n := range f.Nodes {
			res, err := client.Get("http://" + n.Proxy + "/logs/" + fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	// A clean restart: the node refutes the fleet's memory of its leave.
	f.Nodes[1].Stop()
	if err := f.Nodes[1].Start(); err != nil {
		t.Fatal(err)
	}
	if err := f.Nodes[1].WaitReady(30 * time.Second); err != nil {
		t.Fatalf("restart: %v\n%s", err, f.Nodes[1].LogTail(20))
	}
	f.StopAll() // both at once: nobody is left to hear the second leave

	seen := map[string]int{} // component -> lines
	for _, n := range f.Nodes {
		lines := strings.Split(strings.TrimRight(n.Log(), "\n"), "\n")
		if len(lines) < 10 {
			t.Fatalf("%s: only %d log lines", n.Name, len(lines))
		}
		for i, line := range lines {
			fields, err := strictObject([]byte(line))
			if err != nil {
				t.Errorf("%s line %d: %v\n%s", n.Name, i+1, err, line)
				continue
			}
			for _, problem := range logLineProblems(fields) {
				t.Errorf("%s line %d: %s\n%s", n.Name, i+1, problem, line)
			}
			c, _ := fields["component"].(string)
			if msg, _ := fields["message"].(string); c == "" && strings.HasPrefix(msg, "request") {
				c = "proxy request"
			}
			seen[c]++
		}
	}
	for _, c := range []string{"gossip", "memberlist", "recovery", "proxy"} {
		if seen[c] == 0 {
			t.Errorf("no %s log line to check (seen: %v)", c, seen)
		}
	}
}

// durationKey names fields that hold a duration; their key must carry the
// unit (zerolog's Dur writes milliseconds).
var durationKey = regexp.MustCompile(`(^|_)(took|ttl|timeout|interval|outage|catch_up|retry_in|delay|wait|elapsed|age|duration)$`)

// goIdent finds qualified Go names such as Store.NewEpoch or db.MergeRecords.
var goIdent = regexp.MustCompile(`\b[A-Za-z]+\.[A-Z][A-Za-z]+\b`)

// logLineProblems lists what is wrong with one parsed log line.
func logLineProblems(fields map[string]any) []string {
	var out []string
	for _, k := range []string{"level", "time", "message", "node"} {
		if _, ok := fields[k]; !ok {
			out = append(out, "no "+k)
		}
	}
	for k, v := range fields {
		if _, num := v.(float64); num && durationKey.MatchString(k) {
			out = append(out, fmt.Sprintf("duration %q without a unit in its key", k))
		}
	}
	level, _ := fields["level"].(string)
	msg, _ := fields["message"].(string)
	errText, _ := fields["error"].(string)
	if strings.HasPrefix(msg, "Refuting a dead message") && level != "debug" {
		out = append(out, "a restarted node's refutation at "+level)
	}
	if strings.Contains(msg+errText, "timeout waiting for leave broadcast") && level != "debug" {
		out = append(out, "a clean stop reported a leave timeout at "+level)
	}
	if next, ok := fields["next"].(string); ok && goIdent.MatchString(next) {
		out = append(out, "internal function names in next: "+goIdent.FindString(next))
	}
	return out
}

// strictObject decodes one JSON object and refuses a key repeated in any
// object at any depth, and anything after the object.
func strictObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := strictValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more than one JSON value on the line")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func strictValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("key %q twice", k)
				}
				if m[k], err = strictValue(dec); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token() // '}'
			return m, err
		case '[':
			var a []any
			for dec.More() {
				v, err := strictValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token() // ']'
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		f, err := t.Float64()
		return f, err
	default:
		return t, nil
	}
}

func TestStrictObject(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"a":1,"b":"x"}`, true},
		{`{"a":1,"a":2}`, false},
		{`{"a":{"b":1,"b":1}}`, false},
		{`{"a":[{"c":1},{"c":2}]}`, true},
		{`{"a":1} {"b":2}`, false},
		{`[1]`, false},
		{`{"a":`, false},
	} {
		if _, err := strictObject([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	if p := logLineProblems(map[string]any{"level": "info", "time": "t", "message": "m", "node": "n", "took": 1.5}); len(p) != 1 {
		t.Errorf("bare took: %v", p)
	}
	if p := logLineProblems(map[string]any{"level": "info", "time": "t", "message": "m", "node": "n", "took_ms": 1.5,
		"next": "then Recovery.Reconcile"}); len(p) != 1 {
		t.Errorf("function name in next: %v", p)
	}
}
