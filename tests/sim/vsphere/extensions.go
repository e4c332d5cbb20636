package main

// Extensions to govmomi's simulator that libhypersdk's export tests need:
//   - VirtualMachine.ExportVm (missing from the simulator), following the vSphere API:
//     InvalidPowerState unless the VM is powered off, otherwise an HttpNfcLease that is ready
//     with one device URL per file-backed device;
//   - NFC downloads that honour HTTP Range and record the SHA-1 of what was sent, so that
//     HttpNfcLeaseGetManifest answers for downloads as vCenter does ("SHA-1 checksum of the
//     data stream sent from the server");
//   - fault injection and a call log, driven over /_hsdk/control and read from /_hsdk/state;
//   - changed block tracking and session expiry (cbt.go);
//   - a log of datastore downloads (GET /folder/...);
//   - a record of concurrent exports per ESX host and per datastore (export_record.go).
// See README.md.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// faults are armed by the tests; each NFC fault fires on the next download only, unless noted.
type faults struct {
	DropAfter   int64 `json:"nfc_drop_after"`   // send this many bytes, then reset the connection (once)
	KillAfter   int64 `json:"nfc_kill_after"`   // send this many bytes, then exit the process
	StallAfter  int64 `json:"nfc_stall_after"`  // send this many bytes, then send nothing more until the client leaves (once)
	IgnoreRange bool  `json:"nfc_ignore_range"` // answer every download 200 with the whole file (sticky)
	Corrupt     bool  `json:"nfc_corrupt"`      // flip one byte of what is sent; the manifest keeps the true SHA-1 (sticky)
	Status      int   `json:"nfc_status"`       // answer downloads with this HTTP status ...
	StatusCount int   `json:"nfc_status_count"` // ... this many times
	LeaseError  bool  `json:"lease_error"`      // leases from ExportVm / ExportSnapshot go to state error (sticky)
	// VM name -> how many of its next leases go to state error (a negative count: every one)
	LeaseErrorVMs map[string]int `json:"lease_error_vms"`
	NfcLatencyMs  int            `json:"nfc_latency_ms"` // wait this long before answering each NFC download (sticky)
	// send the true bytes but record the SHA-1 of other ones in the lease manifest (sticky)
	ManifestMismatch bool `json:"nfc_manifest_mismatch"`
	// Datastore GETs: after this many, every session ends (once), and a datastore request with an
	// ended session's cookie is answered 401, as vCenter answers an expired session.
	DsExpireAfter int `json:"ds_expire_after"`
	DsStatus      int `json:"ds_status"`     // answer every datastore GET with this status (sticky): access refused
	DsLatencyMs   int `json:"ds_latency_ms"` // wait this long before answering each datastore request (sticky): a WAN
	// ShutdownGuest is accepted but the guest never powers off (sticky): a hung guest.
	GuestShutdownIgnored bool `json:"guest_shutdown_ignored"`
	// ShutdownGuest fails ToolsUnavailable (sticky): a guest without running VMware Tools.
	GuestToolsMissing bool `json:"guest_tools_missing"`
}

type nfcRequest struct {
	Path   string `json:"path"`
	Range  string `json:"range"`
	Status int    `json:"status"`
}

// dsRequest is a datastore download (GET or HEAD /folder/...) as the server answered it.
type dsRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Range  string `json:"range"`
	Status int    `json:"status"`
	Bytes  int64  `json:"bytes"`
}

type extensions struct {
	model *simulator.Model

	mu         sync.Mutex
	faults     faults
	calls      map[string]int
	requests   []nfcRequest
	dsRequests []dsRequest
	expired    map[string]bool                     // session keys ended by "expire_sessions"
	dsSeen     int                                 // datastore GETs counted towards ds_expire_after
	areaCache  map[string][]types.DiskChangeExtent // QueryChangedDiskAreas answers of recorded versions (under cbtMu)

	// Changed block tracking (cbt.go); taken inside a VM's simulator lock, never around one.
	cbtMu       sync.Mutex
	cbt         map[types.ManagedObjectReference]*cbtVM
	cbtMaxAreas int
	// The simulator's lease metadata is a plain map: one recording at a time.
	recordMu sync.Mutex
	// lease id -> file name -> local path of leases from ExportVm / ExportSnapshot (nfc_stream.go)
	leaseFiles map[string]map[string]string
	// open export leases per host and datastore, with peaks (export_record.go; under mu)
	exports exportRecord
}

func newExtensions(model *simulator.Model) *extensions {
	e := &extensions{
		model:       model,
		calls:       map[string]int{},
		expired:     map[string]bool{},
		leaseFiles:  map[string]map[string]string{},
		exports:     newExportRecord(),
		cbt:         map[types.ManagedObjectReference]*cbtVM{},
		cbtMaxAreas: cbtDefaultMaxAreas,
	}
	model.Map().Handler = e.dispatch
	return e
}

// dispatch sees every SOAP call first: it logs it and routes the methods we add or wrap. The
// simulator prefers whatever the caller's session resolves a reference to, so a wrapper is put
// in the session registry under its own reference and the call is pointed at it.
func (e *extensions) dispatch(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	e.mu.Lock()
	e.calls[m.Name]++
	e.mu.Unlock()
	if m.Name == "HttpNfcLeaseComplete" || m.Name == "HttpNfcLeaseAbort" {
		e.exportEnded(m.This)
	}
	if ctx.Session == nil {
		switch m.Name {
		case "RetrieveServiceContent", "Login", "LoginByToken", "LoginExtensionByCertificate", "CloneSession":
		default:
			if e.staleSession(ctx) {
				return nil, &types.NotAuthenticated{NoPermission: types.NoPermission{Object: &m.This, PrivilegeId: "System.View"}}
			}
		}
		return nil, nil
	}
	switch m.Name {
	case "ReconfigVM_Task", "CreateSnapshot_Task", "CreateSnapshotEx_Task", "QueryChangedDiskAreas":
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok {
			w := &vmCBT{vm: vm, ext: e}
			ctx.Session.Put(w)
			m.This = w.Self
		}
	case "ExportVm":
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok {
			w := &vmExporter{vm: vm, ext: e}
			ctx.Session.Put(w)
			m.This = w.Self
		}
	case "ShutdownGuest":
		e.mu.Lock()
		ignore, missing := e.faults.GuestShutdownIgnored, e.faults.GuestToolsMissing
		e.mu.Unlock()
		if ignore || missing {
			w := &ignoredShutdown{toolsMissing: missing}
			ctx.Session.Put(w)
			m.This = w.Self
		}
	case "CreateDescriptor":
		w := &ovfDescriber{}
		ctx.Session.Put(w)
		m.This = w.Self
	case "ExportSnapshot":
		if snap, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot); ok {
			w := &snapshotExporter{snap: snap, ext: e}
			ctx.Session.Put(w)
			m.This = w.Self
		}
	}
	return nil, nil
}

type vmExporter struct {
	Self types.ManagedObjectReference
	vm   *simulator.VirtualMachine
	ext  *extensions
}

func (v *vmExporter) Reference() types.ManagedObjectReference { return v.Self }

// ExportVm: the simulator already builds a lease from a snapshot's device list; a powered-off
// VM's current configuration is exactly what that code needs.
func (v *vmExporter) ExportVm(ctx *simulator.Context, req *types.ExportVm) soap.HasFault {
	defer ctx.Session.Remove(ctx, v.Self)
	vm := v.vm
	body := new(methods.ExportVmBody)
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		body.Fault_ = simulator.Fault("the virtual machine must be powered off to be exported", &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  vm.Runtime.PowerState,
		})
		return body
	}
	current := &simulator.VirtualMachineSnapshot{}
	current.Config = *vm.Config
	current.Vm = vm.Self
	res := current.ExportSnapshot(ctx, &types.ExportSnapshot{This: vm.Self}).(*methods.ExportSnapshotBody)
	if res.Fault_ != nil {
		body.Fault_ = res.Fault_
		return body
	}
	lease := res.Res.Returnval
	v.ext.rememberLeaseFiles(lease, current.Config.Hardware.Device)
	v.ext.exportStarted(ctx, lease, vm.Self, current.Config.Hardware.Device)
	v.ext.maybeFailLease(ctx, lease, vm.Name)
	body.Res = &types.ExportVmResponse{Returnval: lease}
	return body
}

type snapshotExporter struct {
	Self types.ManagedObjectReference
	snap *simulator.VirtualMachineSnapshot
	ext  *extensions
}

func (s *snapshotExporter) Reference() types.ManagedObjectReference { return s.Self }

func (s *snapshotExporter) ExportSnapshot(ctx *simulator.Context, req *types.ExportSnapshot) soap.HasFault {
	defer ctx.Session.Remove(ctx, s.Self)
	res := s.snap.ExportSnapshot(ctx, req).(*methods.ExportSnapshotBody)
	if res.Res != nil {
		s.ext.rememberLeaseFiles(res.Res.Returnval, s.snap.Config.Hardware.Device)
		s.ext.exportStarted(ctx, res.Res.Returnval, s.snap.Vm, s.snap.Config.Hardware.Device)
		name := ""
		if vm, ok := ctx.Map.Get(s.snap.Vm).(*simulator.VirtualMachine); ok {
			name = vm.Name
		}
		s.ext.maybeFailLease(ctx, res.Res.Returnval, name)
	}
	return res
}

// maybeFailLease puts a lease of the VM named vmName in state error when lease_error, or
// lease_error_vms for that VM, is armed.
func (e *extensions) maybeFailLease(ctx *simulator.Context, ref types.ManagedObjectReference, vmName string) {
	e.mu.Lock()
	fail := e.faults.LeaseError
	if n := e.faults.LeaseErrorVMs[vmName]; n != 0 {
		fail = true
		if n > 0 {
			e.faults.LeaseErrorVMs[vmName] = n - 1
		}
	}
	e.mu.Unlock()
	if !fail {
		return
	}
	lease := ctx.Session.Get(ref)
	if lease == nil {
		return
	}
	fault := &types.LocalizedMethodFault{
		Fault:            &types.SystemError{Reason: "injected lease failure"},
		LocalizedMessage: "A general system error occurred: injected lease failure",
	}
	ctx.WithLock(lease, func() {
		ctx.Update(lease, []types.PropertyChange{
			{Name: "state", Val: types.HttpNfcLeaseStateError},
			{Name: "error", Val: fault},
		})
	})
}

// serveNFC answers NFC downloads with Range support and fault injection, and records each
// download's SHA-1 in the lease through the simulator's upload path (an NFC PUT only hashes the
// body; it writes nothing). Files of leases from ExportVm / ExportSnapshot are streamed
// (nfc_stream.go); others are read by the simulator into memory first.
func (e *extensions) serveNFC(w http.ResponseWriter, r *http.Request) {
	if e.serveNFCStreamed(w, r) {
		return
	}
	asked := r.Header.Get("Range")
	rec := httptest.NewRecorder()
	plain := r.Clone(r.Context())
	plain.Header.Del("Range")
	simulator.ServeNFC(rec, plain)
	if rec.Code != http.StatusOK {
		e.logRequest(r, asked, rec.Code)
		w.WriteHeader(rec.Code)
		return
	}
	data := rec.Body.Bytes()
	f := e.takeFaults()

	recorded := data
	if f.ManifestMismatch && len(data) > 0 {
		recorded = append([]byte(nil), data...)
		recorded[len(recorded)/2] ^= 0xff
	}
	e.recordMu.Lock()
	put := httptest.NewRequest(http.MethodPut, r.URL.String(), bytes.NewReader(recorded))
	simulator.ServeNFC(httptest.NewRecorder(), put)
	e.recordMu.Unlock()

	if f.StatusCount > 0 && f.Status != 0 {
		e.logRequest(r, asked, f.Status)
		http.Error(w, "injected failure", f.Status)
		return
	}
	if f.Corrupt && len(data) > 0 {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0x5a
	}
	e.serveBody(w, r, asked, f, bytes.NewReader(data))
}

// serveBody sends a download's bytes with Range (unless nfc_ignore_range) and the connection
// faults armed in f, after nfc_latency_ms, and logs it.
func (e *extensions) serveBody(w http.ResponseWriter, r *http.Request, asked string, f faults, body io.ReadSeeker) {
	if f.NfcLatencyMs > 0 {
		select {
		case <-time.After(time.Duration(f.NfcLatencyMs) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
	if f.IgnoreRange {
		r.Header.Del("Range")
	}
	status := http.StatusOK
	if r.Header.Get("Range") != "" {
		status = http.StatusPartialContent
	}
	e.logRequest(r, asked, status)
	http.ServeContent(e.faultWriter(w, r, f), r, "", time.Time{}, body)
}

// takeFaults returns the armed faults for one download and disarms those that fire once.
func (e *extensions) takeFaults() faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faults
	if e.faults.StatusCount > 0 {
		e.faults.StatusCount--
	}
	e.faults.DropAfter, e.faults.KillAfter, e.faults.StallAfter = 0, 0, 0
	return f
}

// faultWriter wraps the response for the connection faults armed in f.
func (e *extensions) faultWriter(w http.ResponseWriter, r *http.Request, f faults) http.ResponseWriter {
	switch {
	case f.DropAfter > 0:
		return &cutWriter{ResponseWriter: w, left: f.DropAfter, then: func() { panic(http.ErrAbortHandler) }}
	case f.KillAfter > 0:
		return &cutWriter{ResponseWriter: w, left: f.KillAfter, then: func() { os.Exit(3) }}
	case f.StallAfter > 0:
		return &cutWriter{ResponseWriter: w, left: f.StallAfter, then: func() {
			<-r.Context().Done()
			panic(http.ErrAbortHandler)
		}}
	}
	return w
}

// cutWriter passes `left` body bytes through, flushes them to the client, then runs `then`.
type cutWriter struct {
	http.ResponseWriter
	left int64
	then func()
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	n, err := c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if err == nil {
		c.then()
	}
	return n, err
}

// logRequest records a download with the Range the client asked for (even when ignored).
func (e *extensions) logRequest(r *http.Request, asked string, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = append(e.requests, nfcRequest{Path: r.URL.Path, Range: asked, Status: status})
}

// serveDatastore logs datastore downloads and hands them to the simulator (http.FileServer,
// which honours Range).
func (e *extensions) serveDatastore(w http.ResponseWriter, r *http.Request) {
	rec := &countingWriter{ResponseWriter: w}
	req := dsRequest{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range")}
	expire := false
	e.mu.Lock()
	if e.faults.DsExpireAfter > 0 {
		e.dsSeen++
		if e.dsSeen >= e.faults.DsExpireAfter {
			e.faults.DsExpireAfter, e.dsSeen, expire = 0, 0, true
		}
	}
	e.mu.Unlock()
	if expire {
		e.expireSessions()
	}
	stale := false
	if c, err := r.Cookie("vmware_soap_session"); err == nil {
		e.mu.Lock()
		stale = e.expired[c.Value]
		e.mu.Unlock()
	}
	e.mu.Lock()
	refused, latency := e.faults.DsStatus, e.faults.DsLatencyMs
	e.mu.Unlock()
	if latency > 0 {
		time.Sleep(time.Duration(latency) * time.Millisecond)
	}
	if refused != 0 && r.Method == http.MethodGet {
		http.Error(rec, "injected datastore refusal", refused)
	} else if stale {
		http.Error(rec, "session expired", http.StatusUnauthorized)
	} else {
		e.model.Service.ServeDatastore(rec, r)
	}
	req.Status, req.Bytes = rec.status, rec.n
	if req.Status == 0 {
		req.Status = http.StatusOK
	}
	e.mu.Lock()
	e.dsRequests = append(e.dsRequests, req)
	e.mu.Unlock()
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// serveControl: POST a JSON object to arm faults ("faults": {...}, replacing the previous set),
// power VMs off or on ("power_off" / "power_on": [names]), clear the logs ("reset_log": true),
// plant disk content ("plant_disk"), tune or reset change tracking ("cbt_max_areas",
// "cbt_reset") and end every session ("expire_sessions"). See README.md.
func (e *extensions) serveControl(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var req struct {
		Faults   *faults  `json:"faults"`
		PowerOff []string `json:"power_off"`
		PowerOn  []string `json:"power_on"`
		ResetLog bool     `json:"reset_log"`

		PlantDisk      *plantRequest   `json:"plant_disk"`
		AddDisk        *addDiskRequest `json:"add_disk"`
		CBTMaxAreas    *int            `json:"cbt_max_areas"`
		CBTReset       string          `json:"cbt_reset"`
		ExpireSessions bool            `json:"expire_sessions"`
		ServerURL      string          `json:"server_url"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	if req.Faults != nil {
		e.faults = *req.Faults
	}
	if req.ResetLog {
		e.calls = map[string]int{}
		e.requests = nil
		e.dsRequests = nil
		e.resetExportPeaks()
	}
	e.mu.Unlock()
	if req.CBTMaxAreas != nil {
		if *req.CBTMaxAreas < 1 {
			http.Error(w, "cbt_max_areas must be at least 1", http.StatusBadRequest)
			return
		}
		e.cbtMu.Lock()
		e.cbtMaxAreas = *req.CBTMaxAreas
		e.cbtMu.Unlock()
	}
	for _, name := range req.PowerOff {
		if err := e.setPower(name, types.VirtualMachinePowerStatePoweredOff); err != "" {
			http.Error(w, err, http.StatusNotFound)
			return
		}
	}
	for _, name := range req.PowerOn {
		if err := e.setPower(name, types.VirtualMachinePowerStatePoweredOn); err != "" {
			http.Error(w, err, http.StatusNotFound)
			return
		}
	}
	if req.AddDisk != nil {
		if status, msg := e.addDisk(*req.AddDisk); status != http.StatusNoContent {
			http.Error(w, msg, status)
			return
		}
	}
	if req.PlantDisk != nil {
		if status, msg := e.plantDisk(*req.PlantDisk); status != http.StatusNoContent {
			http.Error(w, msg, status)
			return
		}
	}
	if req.CBTReset != "" {
		if status, msg := e.cbtReset(req.CBTReset); status != http.StatusNoContent {
			http.Error(w, msg, status)
			return
		}
	}
	if req.ExpireSessions {
		e.expireSessions()
	}
	if req.ServerURL != "" {
		if status, msg := e.setServerURL(req.ServerURL); status != http.StatusNoContent {
			http.Error(w, msg, status)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// setServerURL changes the address NFC lease URLs name (the simulator's "vcsim.server.url"
// setting), so a relay in front of the simulator (bench/export's latency proxy) also carries the
// downloads, as a vCenter behind a load balancer names its public address.
func (e *extensions) setServerURL(raw string) (int, string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return http.StatusBadRequest, "server_url must be an absolute http(s) URL"
	}
	for _, opt := range e.model.Map().OptionManager().Setting {
		if v := opt.GetOptionValue(); v.Key == "vcsim.server.url" {
			v.Value = u.String()
			return http.StatusNoContent, ""
		}
	}
	return http.StatusInternalServerError, "the simulator has no vcsim.server.url setting"
}

func (e *extensions) findVM(name string) *simulator.VirtualMachine {
	for _, obj := range e.model.Map().All("VirtualMachine") {
		if vm, ok := obj.(*simulator.VirtualMachine); ok && vm.Name == name {
			return vm
		}
	}
	return nil
}

func (e *extensions) setPower(name string, state types.VirtualMachinePowerState) string {
	vm := e.findVM(name)
	if vm == nil {
		return "no VM named " + strconv.Quote(name)
	}
	ctx := e.model.Service.Context
	ctx.WithLock(vm, func() {
		ctx.Update(vm, []types.PropertyChange{{Name: "runtime.powerState", Val: state}})
	})
	return ""
}

// serveState: the SOAP calls seen (by method name), the NFC and datastore downloads seen, each
// VM's snapshot count and change tracking state, so tests can check clean-up and Range use from
// the server's side.
func (e *extensions) serveState(w http.ResponseWriter, r *http.Request) {
	snapshots := map[string]int{}
	for _, obj := range e.model.Map().All("VirtualMachine") {
		vm, ok := obj.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		n := 0
		if vm.Snapshot != nil {
			n = countSnapshots(vm.Snapshot.RootSnapshotList)
		}
		snapshots[vm.Name] = n
	}
	cbt := e.cbtReport()
	e.mu.Lock()
	dsRequests := e.dsRequests
	if dsRequests == nil {
		dsRequests = []dsRequest{}
	}
	state := map[string]any{
		"calls": e.calls, "nfc_requests": e.requests, "snapshots": snapshots,
		"datastore_requests": dsRequests, "cbt": cbt, "exports": e.exportReport(),
	}
	out, _ := json.Marshal(state)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func countSnapshots(list []types.VirtualMachineSnapshotTree) int {
	n := len(list)
	for _, s := range list {
		n += countSnapshots(s.ChildSnapshotList)
	}
	return n
}
