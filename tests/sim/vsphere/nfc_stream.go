package main

// Streamed NFC downloads. The simulator's own GET reads a lease file into memory before the first
// byte leaves; recording the SHA-1 for HttpNfcLeaseGetManifest hashes it all again first. A real
// host streams from the datastore, so that is what we do when the lease's files are known (leases
// from ExportVm / ExportSnapshot): the file is sent as it is read, with Range, while its SHA-1 is
// recorded through the simulator's upload path on another goroutine. The last bytes of the file
// wait until that recording is done, so a client that asks for the manifest after its download
// always finds it.

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// rememberLeaseFiles notes where each device file of a lease lives on disk, the way the
// simulator's ExportSnapshot names them (the backing file's base name).
func (e *extensions) rememberLeaseFiles(lease types.ManagedObjectReference, devices []types.BaseVirtualDevice) {
	files := map[string]string{}
	for _, d := range devices {
		info, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		var file object.DatastorePath
		if !file.FromString(info.GetVirtualDeviceFileBackingInfo().FileName) {
			continue
		}
		if ds := e.findDatastore(file.Datastore); ds != nil {
			files[path.Base(file.Path)] = filepath.Join(ds.Summary.Url, filepath.FromSlash(file.Path))
		}
	}
	e.mu.Lock()
	e.leaseFiles[lease.Value] = files
	e.mu.Unlock()
}

// leaseFile is the local file behind /nfc/<lease>/<name>, or "" when unknown.
func (e *extensions) leaseFile(urlPath string) string {
	parts := strings.Split(strings.TrimPrefix(urlPath, "/nfc/"), "/")
	if len(parts) != 2 {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leaseFiles[parts[0]][parts[1]]
}

// flipped reads like r but with the byte at `at` xor-ed with `mask` (mask 0: unchanged).
type flipped struct {
	r    io.ReaderAt
	at   int64
	mask byte
}

func (f flipped) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(p, off)
	if f.mask != 0 && f.at >= off && f.at < off+int64(n) {
		p[f.at-off] ^= f.mask
	}
	return n, err
}

// heldTail is the file as http.ServeContent reads it; a read reaching the end waits for `ready`.
type heldTail struct {
	*io.SectionReader
	size  int64
	ready <-chan struct{}
}

func (h *heldTail) Read(p []byte) (int, error) {
	pos, _ := h.Seek(0, io.SeekCurrent)
	if pos+int64(len(p)) >= h.size {
		<-h.ready
	}
	return h.SectionReader.Read(p)
}

// serveNFCStreamed answers one download of a known lease file; false when it cannot (the caller
// then takes the simulator's buffered path).
func (e *extensions) serveNFCStreamed(w http.ResponseWriter, r *http.Request) bool {
	local := e.leaseFile(r.URL.Path)
	if local == "" {
		return false
	}
	file, err := os.Open(local)
	if err != nil {
		return false
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return false
	}
	size := st.Size()
	asked := r.Header.Get("Range")
	f := e.takeFaults()

	// The lease manifest: SHA-1 of what is sent (of other bytes with nfc_manifest_mismatch).
	recorded := flipped{r: file, at: size / 2}
	if f.ManifestMismatch && size > 0 {
		recorded.mask = 0xff
	}
	ready := make(chan struct{})
	go func() {
		defer close(ready)
		e.recordMu.Lock()
		defer e.recordMu.Unlock()
		put := httptest.NewRequest(http.MethodPut, r.URL.String(), io.NewSectionReader(recorded, 0, size))
		simulator.ServeNFC(httptest.NewRecorder(), put)
	}()
	defer func() { <-ready }()

	if f.StatusCount > 0 && f.Status != 0 {
		e.logRequest(r, asked, f.Status)
		http.Error(w, "injected failure", f.Status)
		return true
	}
	sent := flipped{r: file, at: size / 2}
	if f.Corrupt && size > 0 {
		sent.mask = 0x5a
	}
	e.serveBody(w, r, asked, f, &heldTail{io.NewSectionReader(sent, 0, size), size, ready})
	return true
}
