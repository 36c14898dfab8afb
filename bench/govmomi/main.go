// The benchmark peer for Snapvisor's VMware adapter: the same work done in process by govmomi
// (Debian's 0.24 library), against the same vcsim. Prints ONE JSON line (times in ms).
//
//	a: N cycles of CreateSnapshot_Task(memory=false, quiesce=false) + wait,
//	   RemoveSnapshot_Task(removeChildren=false, consolidate=true) + wait, on one VM
//	b: one inventory pass: CreateContainerView + one RetrieveProperties (name,
//	   config.instanceUuid, runtime.powerState, runtime.consolidationNeeded, snapshot) + DestroyView
//	c: client start-up: SOAP client, RetrieveServiceContent, Login
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

var inventoryProps = []string{"name", "config.instanceUuid", "runtime.powerState", "runtime.consolidationNeeded", "snapshot"}

func main() {
	rawURL := flag.String("url", "", "vcsim/vCenter SDK URL, e.g. https://127.0.0.1:8989/sdk")
	user := flag.String("user", "user", "user name")
	pass := flag.String("pass", envOr("VCSIM_PASSWORD", "pass"), "password (default: $VCSIM_PASSWORD, else \"pass\"; the variable keeps it out of `ps`)")
	insecure := flag.Bool("insecure", false, "skip TLS verification")
	caFile := flag.String("ca", "", "PEM file of the CA (or self-signed certificate) to trust")
	cycles := flag.Int("cycles", 50, "create+remove snapshot cycles for -what a")
	vmName := flag.String("vm", "DC0_H0_VM0", "VM (name) for the snapshot cycles")
	what := flag.String("what", "all", "a (snapshot cycles), b (inventory), c (client start-up) or all")
	seed := flag.Int("seed-snapshots", 0, "before b, untimed: give this many VMs one more snapshot each, so the inventory carries snapshot trees")
	flag.Parse()
	if valid := map[string]bool{"a": true, "b": true, "c": true, "all": true}; *rawURL == "" || !valid[*what] {
		flag.Usage()
		os.Exit(2)
	}
	u, err := url.Parse(*rawURL)
	if err != nil {
		fail("-url: %v", err)
	}
	ctx := context.Background()
	out := map[string]interface{}{"peer": "govmomi", "what": *what}

	start := time.Now()
	c, err := connect(ctx, u, url.UserPassword(*user, *pass), *insecure, *caFile)
	if err != nil {
		fail("connect: %v", err)
	}
	if *what == "c" || *what == "all" {
		out["startupMs"] = ms(time.Since(start))
	}
	if *what == "a" || *what == "all" {
		if err := snapshotCycles(ctx, c.Client, *vmName, *cycles, out); err != nil {
			fail("snapshot cycles: %v", err)
		}
	}
	if *what == "b" || *what == "all" {
		if err := seedSnapshots(ctx, c.Client, *seed); err != nil {
			fail("seed snapshots: %v", err)
		}
		if err := inventory(ctx, c.Client, out); err != nil {
			fail("inventory: %v", err)
		}
	}
	_ = c.Logout(ctx)
	out["rssKb"], out["peakRssKb"] = memory()
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func connect(ctx context.Context, u *url.URL, login *url.Userinfo, insecure bool, caFile string) (*govmomi.Client, error) {
	sc := soap.NewClient(u, insecure)
	if caFile != "" {
		if err := sc.SetRootCAs(caFile); err != nil {
			return nil, err
		}
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	return c, c.Login(ctx, login)
}

func snapshotCycles(ctx context.Context, c *vim25.Client, vmName string, n int, out map[string]interface{}) error {
	vm, err := find.NewFinder(c).VirtualMachine(ctx, vmName)
	if err != nil {
		return err
	}
	perCycle := make([]float64, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		task, err := vm.CreateSnapshot(ctx, "bench-"+strconv.Itoa(i), "govmomi peer", false, false)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return err
		}
		snap, ok := info.Result.(types.ManagedObjectReference)
		if !ok {
			return fmt.Errorf("CreateSnapshot_Task returned %T, not a snapshot reference", info.Result)
		}
		res, err := methods.RemoveSnapshot_Task(ctx, c, &types.RemoveSnapshot_Task{This: snap, RemoveChildren: false, Consolidate: types.NewBool(true)})
		if err != nil {
			return err
		}
		if err := object.NewTask(c, res.Returnval).Wait(ctx); err != nil {
			return err
		}
		perCycle = append(perCycle, ms(time.Since(t0)))
	}
	out["cycles"] = n
	out["cyclesMs"] = ms(time.Since(start))
	out["cycleP50Ms"], out["cycleP95Ms"] = percentile(perCycle, 0.5), percentile(perCycle, 0.95)
	return nil
}

func inventory(ctx context.Context, c *vim25.Client, out map[string]interface{}) error {
	start := time.Now()
	v, err := view.NewManager(c).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return err
	}
	var vms []mo.VirtualMachine
	err = v.Retrieve(ctx, []string{"VirtualMachine"}, inventoryProps, &vms)
	_ = v.Destroy(ctx)
	if err != nil {
		return err
	}
	out["inventoryMs"] = ms(time.Since(start))
	snapshots := 0
	for _, vm := range vms {
		if vm.Snapshot != nil {
			snapshots += countSnapshots(vm.Snapshot.RootSnapshotList)
		}
	}
	out["inventoryVms"], out["inventorySnapshots"] = len(vms), snapshots
	return nil
}

func seedSnapshots(ctx context.Context, c *vim25.Client, n int) error {
	if n <= 0 {
		return nil
	}
	vms, err := find.NewFinder(c).VirtualMachineList(ctx, "/*/vm/*")
	if err != nil {
		return err
	}
	for i, vm := range vms {
		if i == n {
			break
		}
		task, err := vm.CreateSnapshot(ctx, "bench-seed", "govmomi peer seed", false, false)
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func countSnapshots(tree []types.VirtualMachineSnapshotTree) int {
	n := len(tree)
	for _, s := range tree {
		n += countSnapshots(s.ChildSnapshotList)
	}
	return n
}

// memory reads VmRSS and VmHWM (peak) in kB from /proc/self/status.
func memory() (int, int) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var rss, hwm int
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(fields[1])
		case "VmHWM:":
			hwm, _ = strconv.Atoi(fields[1])
		}
	}
	return rss, hwm
}

func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	return sorted[int(p*float64(len(sorted)-1)+0.5)]
}

func envOr(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "govmomi-bench: "+format+"\n", args...)
	os.Exit(1)
}
