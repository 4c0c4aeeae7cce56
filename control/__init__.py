"""The compact control plane: apiserver, store, scheduler, controllers, kubelet."""
