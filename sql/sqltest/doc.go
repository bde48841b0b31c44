// Package sqltest gives each test its own fully migrated Postgres database.
//
// Once per test process a template database is built (or reused) whose name
// carries a hash of the observer's and River's migrations; each test then
// clones it with CREATE DATABASE ... TEMPLATE, which takes milliseconds, and
// drops its clone on cleanup. The admin connection comes from
// TEST_DATABASE_URL (default DefaultAdminURL).
package sqltest
