package webhook

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// ssrfBlock is one refused address range and the name used in messages
// ("resolves to 10.0.0.1, a private address").
type ssrfBlock struct {
	prefix netip.Prefix
	class  string
}

var ssrfBlocks = []ssrfBlock{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"}, // "this network"; 0.0.0.0 dials the local host
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (shared)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}, // includes 169.254.169.254, cloud metadata
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "private"}, // unique local
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// nat64Prefix is the well-known NAT64 prefix: 64:ff9b::a.b.c.d reaches the
// IPv4 address a.b.c.d, so it is judged by that address.
var nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")

// ClassifyTargetIP reports whether the SSRF guard refuses ip and, if so, the
// kind of address it is ("loopback", "private", "link-local", ...).
// IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) and NAT64 addresses are
// judged by the IPv4 address they carry. It never touches the network.
func ClassifyTargetIP(ip netip.Addr) (class string, blocked bool) {
	if !ip.IsValid() {
		return "invalid", true
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() && nat64Prefix.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	for _, b := range ssrfBlocks {
		if b.prefix.Contains(ip) {
			return b.class, true
		}
	}
	return "", false
}

// targetRefusedError is returned by the dialer's Control hook when the
// address being dialled is refused. Do turns it into a permanent
// DeliveryError naming the URL.
type targetRefusedError struct {
	ip     netip.Addr
	class  string
	target string // the redacted webhook URL, once Send knows it
}

func (e *targetRefusedError) Error() string {
	if e.target != "" {
		return fmt.Sprintf("webhook target %s resolves to %s, a %s address", e.target, e.ip, e.class)
	}
	return fmt.Sprintf("refusing to dial %s, a %s address", e.ip, e.class)
}

func (e *targetRefusedError) Is(target error) bool { return target == observers.ErrPrivateTarget }

// ssrfControl is a net.Dialer.Control hook. It runs after DNS resolution,
// once per address actually dialled, so a hostname that resolves (or later
// re-resolves, as in DNS rebinding) to an internal address is refused.
func ssrfControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return errors.Wrapf(err, "webhook SSRF guard cannot parse dial address %q", address)
	}
	if class, blocked := ClassifyTargetIP(ap.Addr()); blocked {
		return &targetRefusedError{ip: ap.Addr(), class: class}
	}
	return nil
}
