// Package rollout moves a new loa-agent build out to the boxes on the
// controller, a step at a time: it offers the build (in each box's signed
// config) to a percentage of the target boxes, waits until every box
// offered so far runs it and reports healthy, then offers the next step. A
// box that rolls back or refuses the build pauses the rollout, so a bad
// build stops at the first step's boxes. The boxes' side is in package
// selfupdate and device.
package rollout
