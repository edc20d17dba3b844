package web

import (
	"time"

	"github.com/tetherproxy/tether/stickydb"
)

// Kicked wraps a core so that each operator change that made an event
// also calls kick: the shell's "persist and push now", so a delete or a
// rebind from the admin reaches the fleet without waiting for the next
// push tick. kick is called on the handler's goroutine after the core
// returned; it must not block (signal a channel, do not send).
func Kicked(core Core, kick func()) Core { return kickedCore{Core: core, kick: kick} }

type kickedCore struct {
	Core
	kick func()
}

func (c kickedCore) Delete(k stickydb.Key, now time.Time) (stickydb.Binding, error) {
	b, err := c.Core.Delete(k, now)
	if err == nil {
		c.kick()
	}
	return b, err
}

func (c kickedCore) Rebind(k stickydb.Key, from, to string, now time.Time) (stickydb.Binding, bool, error) {
	b, changed, err := c.Core.Rebind(k, from, to, now)
	if err == nil && changed {
		c.kick()
	}
	return b, changed, err
}
