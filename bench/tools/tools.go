//go:build tools

// The peer bench/export runs against, pinned so the Go module proxy gives every machine the same
// build: govc, the command users would pick instead of hsdk export. govc lives in govmomi's main
// module up to v0.46 (later releases moved it to a nested module the proxy does not serve), hence
// v0.46.3 here while the simulator uses v0.52.0.
package tools

import _ "github.com/vmware/govmomi/govc"
