"""The Exchange boundary: connections per tenant, typed errors, and one small class per calendar operation."""
