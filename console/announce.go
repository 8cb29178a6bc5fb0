package console

// routeAnnounce registers the announce pages.
func (c *Console) routeAnnounce() {}

// announcementFragments draws an announcement's deliveries as they change.
func (c *Console) announcementFragments(q *request, v *view) ([]fragment, bool, error) {
	return nil, true, nil
}
