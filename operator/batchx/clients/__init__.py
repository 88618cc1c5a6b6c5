"""The only layer that talks to outside systems (the Kubernetes API); everything above it sees
plain dicts and the errors defined here."""
