// Package brokerconf writes the files that make an external MQTT broker
// enforce the same rules as the controller's embedded broker (the access hook
// in package broadcaster): mosquitto's password_file and acl_file, and the
// mosquitto.conf lines that load them.
//
// The rules: the controller user reads and writes everything under
// loa/<site>/#; a box (or a sensor, which is registered like a box) reads
// plan/all, its own plan, its groups' plans, its own config and its own time
// responses, and writes its own state, events, time requests and trigger
// topic; anonymous clients get nothing. Each box gets its own exact `user`
// section, so the files must be written again, and mosquitto reloaded, when
// boxes are added or removed or their groups change (Options.AnyGroup trades
// the group part of that for letting every box read every group's plan).
//
// Passwords: a box's token is stored only as a SHA-256 hash, which mosquitto
// cannot check. When a box is registered the controller also stores a
// mosquitto-compatible hash of its token (MosquittoHash: PBKDF2-SHA512, the
// "$7$" format mosquitto_passwd writes); the generator copies those. Boxes
// registered before that have none and are left out (Files.Missing).
//
// Nothing here keeps state or starts goroutines; every function is safe for
// concurrent use.
package brokerconf
