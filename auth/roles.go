package auth

import (
	"errors"
	"fmt"
)

// Role is what a staff API token may do.
//
// The staff roles form a ladder, each including the one below it:
//
//	admin    ⊇ operator ⊇ viewer
//	admin:    boxes, groups, volumes, tokens
//	operator: media, announcements, schedules, emergencies
//	viewer:   status, report, audit log and other read-only calls
//
// trigger stands apart: it may only post alerts from outside (CAP). Calls
// that need trigger are also open to operator and admin, who may start
// emergencies anyway; a trigger token may do nothing else.
type Role string

// The roles.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
	RoleTrigger  Role = "trigger"
)

// Roles lists every role: the staff ladder from the least, then trigger.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin, RoleTrigger}

// AdminTokenName is the name the bootstrap admin token (the admin.token file)
// goes by in the audit log; no stored token may take it.
const AdminTokenName = "admin"

// ErrUnknownRole is returned by ParseRole for anything but the four roles.
var ErrUnknownRole = errors.New("unknown role")

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w %q: use admin, operator, viewer or trigger", ErrUnknownRole, s)
}

// rank places the staff roles on their ladder; trigger (and anything
// unknown) is not on it.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Allows reports whether a token with role r may make a call that needs
// role need.
func (r Role) Allows(need Role) bool {
	switch {
	case r.rank() == 0 && r != RoleTrigger, need.rank() == 0 && need != RoleTrigger:
		return false // unknown roles allow and are allowed nothing
	case need == RoleTrigger:
		return r == RoleTrigger || r.Allows(RoleOperator)
	case r == RoleTrigger:
		return false
	}
	return r.rank() >= need.rank()
}
