package proxy

import (
	"net/netip"
	"testing"
)

func TestClientPrefix(t *testing.T) {
	p, err := ParseClientPrefix(" 24 , 48 ")
	if err != nil || p != (ClientPrefix{24, 48}) {
		t.Fatalf("%v %v", p, err)
	}
	for _, bad := range []string{"", "32", "7,64", "32,15", "33,64", "32,129", "a,b"} {
		if _, err := ParseClientPrefix(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, tc := range []struct {
		p        ClientPrefix
		in, want string
	}{
		{DefaultClientPrefix, "203.0.113.77", "203.0.113.77"},
		{DefaultClientPrefix, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{ClientPrefix{24, 48}, "203.0.113.77", "203.0.113.0"},
		{ClientPrefix{24, 48}, "2001:db8:1:2::9", "2001:db8:1::"},
		{ClientPrefix{32, 128}, "2001:db8::9", "2001:db8::9"},
		{ClientPrefix{}, "2001:db8::9", "2001:db8::9"}, // zero: whole address
	} {
		if got := tc.p.Mask(netip.MustParseAddr(tc.in)); got.String() != tc.want {
			t.Errorf("%v.Mask(%s) = %s, want %s", tc.p, tc.in, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { DefaultClientPrefix.Mask(netip.MustParseAddr("2001:db8::1")) }); n != 0 {
		t.Fatalf("Mask allocates %v", n)
	}
}
