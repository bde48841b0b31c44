package builtin

import (
	_ "github.com/fraiseql/fraiseql-observers/observers/action/cache"    // type: cache
	_ "github.com/fraiseql/fraiseql-observers/observers/action/database" // type: database
	_ "github.com/fraiseql/fraiseql-observers/observers/action/email"    // type: email
	_ "github.com/fraiseql/fraiseql-observers/observers/action/log"      // type: log
	_ "github.com/fraiseql/fraiseql-observers/observers/action/search"   // type: search
	_ "github.com/fraiseql/fraiseql-observers/observers/action/slack"    // type: slack
	_ "github.com/fraiseql/fraiseql-observers/observers/action/webhook"  // type: webhook
)
