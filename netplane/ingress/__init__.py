"""The ingress gateway: Ingress (networking.k8s.io/v1) and HTTPRoute (Gateway API) objects
turned into one routing table (pure: routes, paths, ingresses, httproutes, backends), a
load balancer, and a lean HTTP/1.1 reverse proxy on uvloop that serves the table."""
