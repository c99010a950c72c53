//go:build tools

// Package peers pins headscale, the coordination server the interop and e2e
// tests run against. tools/setup builds it from this module.
package peers

import _ "github.com/juanfont/headscale/cmd/headscale"
