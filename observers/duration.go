package observers

import (
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// ParseDuration is time.ParseDuration with two more units, d (24h) and w
// (7d), so that retention and ages read as operators write them: 30d,
// 1w, 1d12h, 90m. A leading - negates the whole; callers that need a
// positive duration check it.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	if rest, ok := strings.CutPrefix(in, "-"); ok {
		d, err := parseUnsignedDuration(in, rest)
		return -d, err
	}
	return parseUnsignedDuration(in, strings.TrimPrefix(in, "+"))
}

func parseUnsignedDuration(in, rest string) (time.Duration, error) {
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			break
		}
		var unit time.Duration
		switch rest[i] {
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			d, err := time.ParseDuration(rest)
			if err != nil {
				return 0, errors.Newf("invalid duration %q", in)
			}
			return checkDuration(in, total, d)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if rest[:i] == "." {
			err = strconv.ErrSyntax
		}
		if err != nil || n*float64(unit) > float64(1<<62) {
			return 0, errors.Newf("invalid duration %q", in)
		}
		total += time.Duration(n * float64(unit))
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, errors.Newf("invalid duration %q", in)
		}
		return checkDuration(in, total, d)
	}
	return total, nil
}

func checkDuration(in string, a, b time.Duration) (time.Duration, error) {
	if b < 0 || a+b < a {
		return 0, errors.Newf("invalid duration %q", in)
	}
	return a + b, nil
}
