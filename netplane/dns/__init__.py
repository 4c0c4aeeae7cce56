"""Cluster DNS: the Kubernetes DNS-Based Service Discovery specification (schema 1.1.0) for
Services, EndpointSlices and Pods, forwarding for every other name. Pure cores (`records`,
`zone`, `answer`, `autopath`, `edns`, `answercache`, `upstreamcache`, `upstreams`) and thin
shells (`querypath`, `server`, `forward`, `feed`, `http`, `daemon`)."""
