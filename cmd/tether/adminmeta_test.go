package main

import "testing"

func TestMemberAdminURL(t *testing.T) {
	meta := func(admin string) []byte { return encodeMemberMeta(Config{AdminListen: admin}) }
	for _, tc := range []struct {
		meta   []byte
		gossip string
		want   string
	}{
		{meta("127.0.0.1:9090"), "127.0.0.1:7946", "http://127.0.0.1:9090"},
		{meta("10.0.0.1:9090"), "10.0.0.1:7946", "http://10.0.0.1:9090"},
		{meta(":9090"), "10.0.0.2:7946", "http://10.0.0.2:9090"},
		{meta("0.0.0.0:9090"), "10.0.0.2:7946", "http://10.0.0.2:9090"},
		{meta("[::]:9090"), "[fd00::2]:7946", "http://[fd00::2]:9090"},
		{meta("127.0.0.1:9090"), "10.0.0.2:7946", ""}, // loopback admin of a remote node
		{meta("admin.example:9090"), "10.0.0.2:7946", "http://admin.example:9090"},
		{meta("10.0.0.1"), "10.0.0.1:7946", ""},
		{nil, "10.0.0.1:7946", ""},
		{[]byte("{not json"), "10.0.0.1:7946", ""},
		{[]byte(`{"admin":"10.0.0.1:0"}`), "10.0.0.1:7946", ""},
	} {
		if got := memberAdminURL(tc.meta, tc.gossip); got != tc.want {
			t.Errorf("%s via %s: %q, want %q", tc.meta, tc.gossip, got, tc.want)
		}
	}
}
