package main

import (
	"context"
	"fmt"
	"os"
	"time"

	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

// criReset stops and removes every pod sandbox of the container runtime at
// the given endpoint, as `crictl rmp --all --force` does (Debian has no
// crictl). Stopping a sandbox through the CRI is what releases its network
// (CNI DEL) and its network namespace, so teardown leaves no veth or netns.
func criReset(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: hyperkube cri-reset unix:///path/to/containerd.sock")
		return 2
	}
	logger := klog.Background()
	runtime, err := remote.NewRemoteRuntimeService(args[0], 10*time.Second, nil, &logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-reset:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sandboxes, err := runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-reset:", err)
		return 1
	}
	failed := 0
	for _, sandbox := range sandboxes {
		name := sandbox.GetMetadata().GetNamespace() + "/" + sandbox.GetMetadata().GetName()
		if err := runtime.StopPodSandbox(ctx, sandbox.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: stop %s: %v\n", name, err)
			failed++
			continue
		}
		if err := runtime.RemovePodSandbox(ctx, sandbox.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: remove %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("removed pod sandbox %s\n", name)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
