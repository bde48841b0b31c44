package observertest

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
)

// maxLogLine bounds one log line; a longer line stops the reading (noted in
// the log) and the rest of the output is discarded.
const maxLogLine = 1 << 20

// processLog keeps what a process logs: every line in memory or in a file,
// the last lines in a ring, and the admin address from the started line.
type processLog struct {
	path string    // "" keeps the whole log in buf
	file *os.File  // open while the process runs, when path is set
	out  io.Writer // optional live copy

	mu       sync.Mutex
	buf      bytes.Buffer
	ring     []string // the last len(ring) lines, oldest at next once full
	next     int
	full     bool
	addr     string
	writeErr error // first failure writing the file
}

func newProcessLog(path string, tailLines int, out io.Writer) (*processLog, error) {
	l := &processLog{path: path, out: out, ring: make([]string, tailLines)}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, errors.Wrap(err, "observertest: create log file")
		}
		l.file = f
	}
	return l, nil
}

// read consumes r line by line until EOF, calling started once at the
// "run: started" line.
func (l *processLog) read(r io.Reader, started func()) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLogLine)
	seen := false
	for sc.Scan() {
		line := sc.Text()
		l.add(line)
		if !seen && isStartedLine(line) {
			seen = true
			l.setHTTPAddr(parseHTTPAddr(line))
			started()
		}
	}
	if err := sc.Err(); err != nil {
		l.add("observertest: stopped reading the log: " + err.Error())
	}
	_, _ = io.Copy(io.Discard, r) // never leave the process blocked on a full pipe
}

func (l *processLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		if _, err := l.file.WriteString(line + "\n"); err != nil && l.writeErr == nil {
			l.writeErr = err
		}
	} else {
		l.buf.WriteString(line)
		l.buf.WriteByte('\n')
	}
	if len(l.ring) > 0 {
		l.ring[l.next] = line
		l.next = (l.next + 1) % len(l.ring)
		l.full = l.full || l.next == 0
	}
	if l.out != nil {
		_, _ = io.WriteString(l.out, line+"\n")
	}
}

func (l *processLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		_ = l.file.Close()
	}
}

func (l *processLog) all() string {
	if l.path == "" {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.buf.String()
	}
	b, err := os.ReadFile(l.path)
	l.mu.Lock()
	werr := l.writeErr
	l.mu.Unlock()
	if err == nil && werr == nil {
		return string(b)
	}
	return string(b) + "observertest: the log file is incomplete: " + errors.Join(err, werr).Error() +
		"\nlast lines:\n" + l.tail()
}

func (l *processLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.ring[:l.next]
	if l.full {
		lines = append(append([]string(nil), l.ring[l.next:]...), l.ring[:l.next]...)
	}
	return strings.Join(lines, "\n")
}

func (l *processLog) httpAddr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

func (l *processLog) setHTTPAddr(addr string) {
	if addr == "" {
		return
	}
	l.mu.Lock()
	l.addr = addr
	l.mu.Unlock()
}

// isStartedLine reports whether line is run's "run: started" record, in the
// text or the JSON log format.
func isStartedLine(line string) bool {
	return strings.Contains(line, `msg="run: started"`) || strings.Contains(line, `"msg":"run: started"`)
}

// parseHTTPAddr reads http_addr from a text or JSON log line.
func parseHTTPAddr(line string) string {
	if _, v, ok := strings.Cut(line, `"http_addr":"`); ok {
		addr, _, _ := strings.Cut(v, `"`)
		return addr
	}
	if _, v, ok := strings.Cut(line, " http_addr="); ok {
		if f := strings.Fields(v); len(f) > 0 {
			return strings.Trim(f[0], `"`)
		}
	}
	return ""
}
