package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/auth"
	"github.com/loa-commune/loa/messages"
)

func newToken(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Give staff and alert feeds their own API tokens, each with a role",
		Long: "Staff API tokens, each with a name (shown in the audit log) and a role:\n" +
			"  admin     boxes, groups, volumes and tokens, and everything operator may do\n" +
			"  operator  media, announcements, schedules and emergencies, and everything viewer may do\n" +
			"  viewer    status, report, audit log and the other read-only calls\n" +
			"  trigger   only alerts from outside (POST /v1/alerts/cap), for a CAP feed\n" +
			"The bootstrap admin token (admin.token in the controller's data folder) always works and is\n" +
			"called \"admin\" in the audit log. Managing tokens needs the admin role.",
	}
	var role string
	var expires time.Duration
	add := &cobra.Command{
		Use:   "add NAME [--role viewer] [--expires 720h]",
		Short: "Make a token and print its secret (shown only once)",
		Args:  cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			if _, err := auth.ParseRole(role); err != nil {
				return usageErr(errors.New(messages.T(messages.BadRole, role)))
			}
			req := api.AddTokenRequest{Name: args[0], Role: role}
			switch {
			case expires < 0:
				return usageErr(errors.New(messages.T(messages.BadExpiry, expires.String())))
			case expires > 0:
				req.Expires = expires.String()
			}
			res, err := c.AddToken(ctx, req)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), res)
			}
			until := "until it is revoked"
			if !res.Token.ExpiresAt.IsZero() {
				until = "until " + when(res.Token.ExpiresAt)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Added token %s (role %s, works %s). Give it to its holder now: it is shown only once.\n"+
				"They use it with --token or LOA_TOKEN. Revoke it with: loa token revoke %s\n", res.Token.Name, res.Token.Role, until, res.Token.Name)
			fmt.Fprintln(cmd.OutOrStdout(), res.Secret)
			return nil
		}),
	}
	add.Flags().StringVar(&role, "role", string(auth.RoleViewer), "admin, operator, viewer or trigger")
	add.Flags().DurationVar(&expires, "expires", 0, "stop working after this long, e.g. 720h (30 days); default never")

	list := &cobra.Command{
		Use: "list", Short: "List the tokens: name, role, status, created, expires, last used, revoked", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			ts, err := c.Tokens(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), ts)
			}
			rows := [][]string{}
			for _, t := range ts {
				expires := "never"
				if !t.ExpiresAt.IsZero() {
					expires = when(t.ExpiresAt)
				}
				rows = append(rows, []string{t.Name, t.Role, t.Status, when(t.CreatedAt), expires, when(t.LastUsedAt), when(t.RevokedAt)})
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "ROLE", "STATUS", "CREATED", "EXPIRES", "LAST USED", "REVOKED"}, rows)
		}),
	}
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token: it stops working at once", Args: cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			t, err := c.RevokeToken(ctx, args[0])
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s: it no longer works.\n", t.Name)
			return nil
		}),
	}
	var since, until string
	log := &cobra.Command{
		Use: "log [NAME]", Short: "Every change made through the API, with the name of the token that made it",
		Args: cobra.MaximumNArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			entries, err := c.AuditRequests(ctx, since, until)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				mine := entries[:0]
				for _, e := range entries {
					if e.Actor == args[0] {
						mine = append(mine, e)
					}
				}
				entries = mine
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			rows := [][]string{}
			for _, e := range entries {
				rows = append(rows, []string{when(e.At), e.Actor, e.Details})
			}
			return table(cmd.OutOrStdout(), []string{"AT", "TOKEN", "REQUEST"}, rows)
		}),
	}
	log.Flags().StringVar(&since, "since", "", "only requests from this time (site zone: \"2026-12-01 06:00\", \"06:00\" today)")
	log.Flags().StringVar(&until, "until", "", "only requests before this time")
	cmd.AddCommand(add, list, revoke, log)
	return cmd
}
