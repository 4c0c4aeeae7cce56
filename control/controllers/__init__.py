"""The controller-manager's control loops and the framework they share (informer set,
work queue, queue-and-workers base class, manager)."""
