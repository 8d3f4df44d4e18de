"""Write-once archive: store, index, retention, approvals, audit, export."""
