// Package signing keeps the controller's ed25519 signing keys on disk: the
// current key (<data>/controller.key, created on first start, mode 0600)
// and, during a rotation, the next one (controller.next.key). While both
// exist the controller signs with both and tells boxes to trust both; when
// the rotation is finished the next key becomes the current one and the old
// one is dropped, so boxes move to the new key without being re-provisioned.
package signing
