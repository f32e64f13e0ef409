"""Revenue analytics, usage forecasts and churn prediction on Ray tasks (issue 6)."""
