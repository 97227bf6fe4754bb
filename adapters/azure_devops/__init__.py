"""Azure DevOps adapter: service-hook ingest and SDK clients for runs, builds and approvals."""
