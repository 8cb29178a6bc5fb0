// Package backup keeps the controller's data in a second place (a USB
// disk, a NAS share) so that losing the office PC is a short
// inconvenience: every few minutes a consistent snapshot of the SQLite
// database (VACUUM INTO, while the controller runs), its signing keys and
// admin token, and the media, builds and recordings it has not copied yet;
// a manifest written last says the backup is complete. Restore checks
// every file against the manifest and puts them into a new data folder, so
// a new PC continues with the same keys and ids and the boxes carry on
// without a visit.
package backup
