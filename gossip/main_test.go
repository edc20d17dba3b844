package gossip

import (
	"testing"

	"github.com/tetherproxy/tether/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
