package redis

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// OpTimeoutDefault bounds each call to Redis unless a config says otherwise,
// so that a hung server degrades a batch quickly instead of stalling it.
const OpTimeoutDefault = 2 * time.Second

// NewClient returns a client for url (redis://[user:password@]host:port/db,
// or rediss:// for TLS). It does not connect: the first command does. The
// error never contains the URL, which may hold a password.
func NewClient(url string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, errors.WithHint(errors.New("redis.url is not a valid Redis URL"),
			"write it as redis://host:6379/0 (rediss:// for TLS); a password goes in redis://:password@host:6379/0")
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = OpTimeoutDefault
	opt.WriteTimeout = OpTimeoutDefault
	opt.MaxRetries = 1
	return goredis.NewClient(opt), nil
}

// Ping checks that the server answers.
func Ping(ctx context.Context, c goredis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeoutDefault)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return unavailable(err, "ping")
	}
	return nil
}

// unavailable wraps a Redis error and marks it storage.ErrUnavailable.
func unavailable(err error, what string) error {
	return errors.Mark(errors.Wrapf(err, "redis: %s", what), storage.ErrUnavailable)
}
