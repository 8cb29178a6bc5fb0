// Package store keeps the controller's state in one SQLite file (WAL mode):
// devices and their credentials, groups, media metadata, announcements and
// schedules, what every box reported (state, events, deliveries).
//
// It is the only package that writes SQL. Migrations are embedded, numbered
// and applied in order inside a transaction at Open. A *Store is safe for
// concurrent use; SQLite serialises writers, so it holds one connection.
package store
