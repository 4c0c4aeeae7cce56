"""`netplane trace`: the path one probe packet from a pod takes through a node's proxy.

Pure cores (the iptables rule set and its walk, the choice among the walk's branches by
counters and conntrack, the report) beside thin shells (the scapy probe in the pod's
network namespace, iptables-save and conntrack in the node's, the API look-ups).
"""
