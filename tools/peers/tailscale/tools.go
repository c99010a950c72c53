//go:build tools

// Package peers pins the Tailscale programs the tests run against
// (tailscaled, tailscale, derper, tsp). tools/setup builds them from here.
package peers

import (
	_ "tailscale.com/cmd/derper"
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
	_ "tailscale.com/cmd/tsp"
)
