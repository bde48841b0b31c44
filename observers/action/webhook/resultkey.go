package webhook

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/http"
	"slices"
	"strings"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// ResultKey is the result cache key of a rendered HTTP delivery (webhook or
// Slack): action:{type}:{entity_type}:{entity_id}:{hash}, the hash over the
// observer, method, URL, the user headers (not the per-attempt webhook-id,
// timestamp and signature ones, which Send sets itself) and the body.
func ResultKey(actionType string, ev *observers.Event, observer, method, url string, headers map[string]string, body []byte) string {
	h := sha256.New()
	field(h, []byte(observer))
	field(h, []byte(strings.ToUpper(method)))
	field(h, []byte(url))
	names := make([]string, 0, len(headers))
	for k := range headers {
		if !IsReservedHeader(k) {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(http.CanonicalHeaderKey(a), http.CanonicalHeaderKey(b)) })
	_ = binary.Write(h, binary.BigEndian, uint32(len(names)))
	for _, k := range names {
		field(h, []byte(http.CanonicalHeaderKey(k)))
		field(h, []byte(headers[k]))
	}
	field(h, body)
	return "action:" + actionType + ":" + ev.EntityType + ":" + ev.EntityID + ":" + hex.EncodeToString(h.Sum(nil))
}

// field writes b length-prefixed, so that no two field lists hash alike.
func field(h hash.Hash, b []byte) {
	_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
	h.Write(b)
}
