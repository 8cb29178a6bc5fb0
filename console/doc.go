// Package console is the commune office's web console, served by `loa
// serve` at its HTTP address: sign-in with a staff token, the boxes' status
// live, announcements, emergencies, schedules, media, the report and the
// audit log, in Vietnamese first.
//
// It is a thin client of the API in the same process (api.NewLocalClient):
// every action is an API call made with the signed-in person's token, so
// the roles, checks, rate limits and audit log are the API's own. Pages are
// server-rendered Go templates; the few scripts (htmx, vendored from npm,
// and console.js) and the styles are embedded in the binary, so the
// console needs no build step and no internet.
package console
