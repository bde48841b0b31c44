package observertest

import (
	"cmp"
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/emersion/go-smtp"
)

// MaxMessageBytesDefault bounds a message an SMTPServer accepts.
const MaxMessageBytesDefault = 10 << 20

// SMTPOptions configures an SMTPServer. The zero value accepts every
// message.
type SMTPOptions struct {
	// MailErr, RcptErr and DataErr, when set, are the answers to MAIL FROM,
	// RCPT TO and DATA: a *smtp.SMTPError (github.com/emersion/go-smtp)
	// chooses the reply code; any other error is go-smtp's default (451 at
	// MAIL and RCPT, 554 at DATA).
	MailErr, RcptErr, DataErr error
	// MaxMessageBytes bounds a message. Default MaxMessageBytesDefault.
	MaxMessageBytes int64
}

// Message is one message an SMTPServer accepted.
type Message struct {
	From string   // the envelope sender (MAIL FROM)
	To   []string // the envelope recipients (RCPT TO)
	Data []byte   // the message as sent, headers and body
}

// SMTPServer is an SMTP server on loopback, without TLS or AUTH, that keeps
// every message it accepts. Configure an observer with
// `smtp: {host: <Host>, port: <Port>, tls: none}`. Every method is safe for
// concurrent use.
type SMTPServer struct {
	opts SMTPOptions
	srv  *smtp.Server
	addr *net.TCPAddr

	mu      sync.Mutex
	msgs    []Message
	next    int           // msgs[next:] are not yet returned by Wait
	changed chan struct{} // closed and replaced when msgs grows
}

// ListenSMTP starts an SMTPServer on a free loopback port. Close it when
// done.
func ListenSMTP(opts SMTPOptions) (*SMTPServer, error) {
	opts.MaxMessageBytes = cmp.Or(opts.MaxMessageBytes, MaxMessageBytesDefault)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Wrap(err, "observertest: smtp listen")
	}
	s := &SMTPServer{opts: opts, addr: ln.Addr().(*net.TCPAddr), changed: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.MaxMessageBytes = opts.MaxMessageBytes
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.ErrorLog = quietLog{}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// NewSMTPServer is ListenSMTP for a test: it fails the test on error and
// closes the server on cleanup.
func NewSMTPServer(t testing.TB, opts SMTPOptions) *SMTPServer {
	t.Helper()
	s, err := ListenSMTP(opts)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Host is the server's IP address, 127.0.0.1.
func (s *SMTPServer) Host() string { return s.addr.IP.String() }

// Port is the server's TCP port.
func (s *SMTPServer) Port() int { return s.addr.Port }

// Addr is host:port.
func (s *SMTPServer) Addr() string { return s.addr.String() }

// Close stops the server and closes its connections.
func (s *SMTPServer) Close() error { return s.srv.Close() }

// Messages returns every message accepted so far, in order.
func (s *SMTPServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Wait returns the next n messages that no earlier Wait returned, waiting
// for them until ctx ends.
func (s *SMTPServer) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		have := len(s.msgs) - s.next
		if have >= n {
			got := slices.Clone(s.msgs[s.next : s.next+n])
			s.next += n
			s.mu.Unlock()
			return got, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, errors.Wrapf(ctx.Err(), "got %d of %d messages", have, n)
		}
	}
}

// WaitN is Wait for a test: it fails the test unless n messages arrive
// within timeout.
func (s *SMTPServer) WaitN(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got, err := s.Wait(ctx, n)
	if err != nil {
		t.Fatalf("smtp server: within %s: %v", timeout, err)
	}
	return got
}

func (s *SMTPServer) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

// smtpSession is one SMTP transaction at a time on one connection.
type smtpSession struct {
	s    *SMTPServer
	from string
	to   []string
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.MailErr != nil {
		return x.s.opts.MailErr
	}
	x.from = from
	return nil
}

func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.s.opts.RcptErr != nil {
		return x.s.opts.RcptErr
	}
	x.to = append(x.to, to)
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if x.s.opts.DataErr != nil {
		return x.s.opts.DataErr
	}
	x.s.add(Message{From: x.from, To: slices.Clone(x.to), Data: data})
	return nil
}

// quietLog drops go-smtp's connection error logs.
type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}
