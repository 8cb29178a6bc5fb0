package auth

import (
	"errors"
	"testing"
)

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		got, err := ParseRole(string(r))
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "operator ", "viewers"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrUnknownRole) {
			t.Errorf("ParseRole(%q) error = %v, want ErrUnknownRole", s, err)
		}
	}
}

func TestRoleAllows(t *testing.T) {
	// Each row says which calls a role may make, by the role the call needs.
	tests := []struct {
		role                             Role
		viewer, operator, admin, trigger bool
	}{
		{RoleViewer, true, false, false, false},
		{RoleOperator, true, true, false, true},
		{RoleAdmin, true, true, true, true},
		{RoleTrigger, false, false, false, true},
		{Role("root"), false, false, false, false},
		{Role(""), false, false, false, false},
	}
	for _, tc := range tests {
		t.Run(string(tc.role), func(t *testing.T) {
			for need, want := range map[Role]bool{RoleViewer: tc.viewer, RoleOperator: tc.operator, RoleAdmin: tc.admin, RoleTrigger: tc.trigger} {
				if got := tc.role.Allows(need); got != want {
					t.Errorf("%s.Allows(%s) = %v, want %v", tc.role, need, got, want)
				}
			}
			if tc.role.Allows("root") {
				t.Errorf("%s allows an unknown role", tc.role)
			}
		})
	}
}
