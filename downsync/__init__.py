"""downsync: keeps Exchange / Outlook calendars in step with Salesforce Lightning Scheduler."""
