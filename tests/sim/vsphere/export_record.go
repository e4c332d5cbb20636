package main

// A record of concurrent exports, per ESX host and per datastore, so a test can check a client's
// concurrency limits from the server's side (tests/integration/test_batch.py: "never more than N
// exports of one host in flight"). An export is counted from the moment ExportVm / ExportSnapshot
// hands out its HttpNfcLease until the client calls HttpNfcLeaseComplete or HttpNfcLeaseAbort on
// it: the whole time the lease's disks may be read, which is what a per-host limit protects. A
// lease that is never completed nor aborted stays counted (a client that leaks leases shows up as
// a high count, never a low one).

import (
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// exportCount is one host's or one datastore's exports: in flight now, the most ever in flight
// at once since the last reset_log, and how many were started since then.
type exportCount struct {
	Active int `json:"active"`
	Peak   int `json:"peak"`
	Total  int `json:"total"`
}

// activeExport is what an open lease counts against.
type activeExport struct {
	host       string
	datastores []string
}

// exportRecord lives in extensions, under e.mu.
type exportRecord struct {
	leases     map[string]activeExport // lease id -> where it counts
	hosts      map[string]*exportCount
	datastores map[string]*exportCount
}

func newExportRecord() exportRecord {
	return exportRecord{leases: map[string]activeExport{}, hosts: map[string]*exportCount{}, datastores: map[string]*exportCount{}}
}

func bump(m map[string]*exportCount, key string, delta int) {
	c := m[key]
	if c == nil {
		c = &exportCount{}
		m[key] = c
	}
	c.Active += delta
	if delta > 0 {
		c.Total++
		if c.Active > c.Peak {
			c.Peak = c.Active
		}
	}
}

// exportStarted counts a lease just handed out for the VM `vmRef` over `devices`.
func (e *extensions) exportStarted(ctx *simulator.Context, lease types.ManagedObjectReference, vmRef types.ManagedObjectReference, devices []types.BaseVirtualDevice) {
	host := "unknown"
	if vm, ok := ctx.Map.Get(vmRef).(*simulator.VirtualMachine); ok && vm.Runtime.Host != nil {
		if h, ok := ctx.Map.Get(*vm.Runtime.Host).(*simulator.HostSystem); ok {
			host = h.Name
		}
	}
	seen := map[string]bool{}
	var datastores []string
	for _, d := range devices {
		info, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		var file object.DatastorePath
		if file.FromString(info.GetVirtualDeviceFileBackingInfo().FileName) && !seen[file.Datastore] {
			seen[file.Datastore] = true
			datastores = append(datastores, file.Datastore)
		}
	}
	sort.Strings(datastores)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.exports.leases[lease.Value]; dup {
		return
	}
	e.exports.leases[lease.Value] = activeExport{host: host, datastores: datastores}
	bump(e.exports.hosts, host, +1)
	for _, ds := range datastores {
		bump(e.exports.datastores, ds, +1)
	}
}

// exportEnded stops counting a lease (HttpNfcLeaseComplete / HttpNfcLeaseAbort); a lease not
// counted, or already ended, is ignored.
func (e *extensions) exportEnded(lease types.ManagedObjectReference) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.exports.leases[lease.Value]
	if !ok {
		return
	}
	delete(e.exports.leases, lease.Value)
	bump(e.exports.hosts, a.host, -1)
	for _, ds := range a.datastores {
		bump(e.exports.datastores, ds, -1)
	}
}

// resetExportPeaks (reset_log, under e.mu): peaks restart from what is in flight now, totals from 0;
// leases still open keep being counted.
func (e *extensions) resetExportPeaks() {
	for _, m := range []map[string]*exportCount{e.exports.hosts, e.exports.datastores} {
		for k, c := range m {
			if c.Active == 0 {
				delete(m, k)
				continue
			}
			c.Peak, c.Total = c.Active, 0
		}
	}
}

// exportReport (under e.mu) is the "exports" member of /_hsdk/state.
func (e *extensions) exportReport() map[string]any {
	copyOf := func(m map[string]*exportCount) map[string]exportCount {
		out := map[string]exportCount{}
		for k, c := range m {
			out[k] = *c
		}
		return out
	}
	return map[string]any{"hosts": copyOf(e.exports.hosts), "datastores": copyOf(e.exports.datastores)}
}
