package daemon

import (
	"context"
	"net"
	"strconv"
	"time"
)

// Notifier speaks systemd's sd_notify protocol (Type=notify units): READY,
// STATUS and WATCHDOG datagrams to $NOTIFY_SOCKET. Without that variable
// every call is a no-op, so it is safe everywhere.
type Notifier struct {
	addr     string
	watchdog time.Duration // 0: no watchdog asked for
}

// NewNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC through getenv.
func NewNotifier(getenv func(string) string) *Notifier {
	n := &Notifier{addr: getenv("NOTIFY_SOCKET")}
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n
}

// Send writes one state line ("READY=1", "STATUS=...").
func (n *Notifier) Send(state string) error {
	if n == nil || n.addr == "" {
		return nil
	}
	addr := n.addr
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// Watchdog pings systemd at half the interval it asked for, until ctx ends.
func (n *Notifier) Watchdog(ctx context.Context) {
	if n == nil || n.addr == "" || n.watchdog == 0 {
		return
	}
	t := time.NewTicker(n.watchdog / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = n.Send("WATCHDOG=1")
		}
	}
}
