package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/messages"
)

func newDevice(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Register loudspeaker boxes and set their volume"}
	var req api.AddDeviceRequest
	var volume int
	var writeConfig string
	var enrollNow bool
	var valid time.Duration
	var lat, lon float64
	add := &cobra.Command{
		Use:   "add ID",
		Short: "Register a box and print (or write) its agent config with its credentials",
		Args:  cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			req.ID = args[0]
			if cmd.Flags().Changed("volume") {
				req.Volume = &volume
			}
			req.Lat, req.Lon = floatFlag(cmd, "lat", lat), floatFlag(cmd, "lon", lon)
			if err := api.CheckLocation(req.Lat, req.Lon); err != nil {
				return usageErr(err)
			}
			if enrollNow && writeConfig != "" {
				return usageErr(errors.New("choose --enroll (the box fetches its config with a code) or --write-config (you copy the file), not both"))
			}
			res, err := c.AddDevice(ctx, req)
			if err != nil {
				return err
			}
			if enrollNow {
				fmt.Fprintf(os.Stderr, "Added box %s.\n", res.Device.ID)
				return printEnrolment(ctx, c, cmd, g, res.Device.ID, valid)
			}
			if writeConfig != "" {
				if err := os.WriteFile(writeConfig, []byte(res.AgentConfig), 0o600); err != nil {
					return fmt.Errorf("write agent config: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			switch {
			case g.output == "json":
				return printJSON(out, res)
			case writeConfig != "":
				fmt.Fprintf(out, "Added box %s. Its agent config is in %s: copy it to the box as /etc/loa/agent.yaml.\n", res.Device.ID, writeConfig)
			default:
				fmt.Fprintf(os.Stderr, "Added box %s. Save this as /etc/loa/agent.yaml on the box (it is shown only once):\n", res.Device.ID)
				fmt.Fprint(out, res.AgentConfig)
			}
			return nil
		}),
	}
	add.Flags().StringVar(&req.Name, "name", "", "a name people know the box by (e.g. \"Thôn 1 - nhà văn hoá\")")
	add.Flags().StringSliceVar(&req.Groups, "group", nil, "group (village) to put the box in; repeat for several")
	add.Flags().IntVar(&volume, "volume", 80, "volume 0-100")
	add.Flags().Float64Var(&lat, "lat", 0, "latitude of the box, for the console's map (like 21.03; give --lon too)")
	add.Flags().Float64Var(&lon, "lon", 0, "longitude of the box, for the console's map (like 105.85; give --lat too)")
	add.Flags().StringVar(&writeConfig, "write-config", "", "write the agent config to this file instead of printing it")
	add.Flags().BoolVar(&enrollNow, "enroll", false, "print a one-time code (and its QR code) for `loa-agent enroll` on the box instead of a config file")
	add.Flags().DurationVar(&valid, "valid", api.DefaultEnrolValidity, "with --enroll: how long the code works")
	enroll := &cobra.Command{
		Use:   "enroll ID",
		Short: "Print a new one-time code for a box to fetch its config (a new box, or a new SD card)",
		Long: "Print a one-time code for `loa-agent enroll` on the box. The box gets a new token when it uses the code: " +
			"its old config stops working.",
		Args: cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			return printEnrolment(ctx, c, cmd, g, args[0], valid)
		}),
	}
	enroll.Flags().DurationVar(&valid, "valid", api.DefaultEnrolValidity, "how long the code works")

	list := &cobra.Command{
		Use: "list", Short: "List the boxes", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			ds, err := c.Devices(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), ds)
			}
			rows := [][]string{}
			for _, d := range ds {
				rows = append(rows, []string{d.ID, orDash(d.Name), orDash(strings.Join(d.Groups, ",")), strconv.Itoa(d.Volume), place(d.Lat, d.Lon)})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "NAME", "GROUPS", "VOLUME", "PLACE"}, rows)
		}),
	}
	rm := &cobra.Command{
		Use: "rm ID", Short: "Remove a box (its credentials stop working)", Args: cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			if err := c.RemoveDevice(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed box %s.\n", args[0])
			return nil
		}),
	}
	vol := &cobra.Command{
		Use: "volume ID 0-100", Short: "Set a box's volume", Args: cobra.ExactArgs(2),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			v, err := strconv.Atoi(args[1])
			if err != nil || v < 0 || v > 100 {
				return usageErr(fmt.Errorf("%s", messages.T(messages.BadVolume, args[1])))
			}
			d, err := c.SetVolume(ctx, args[0], v)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Volume of %s is now %d.\n", d.ID, d.Volume)
			return nil
		}),
	}
	var locLat, locLon float64
	var off bool
	locate := &cobra.Command{
		Use:   "locate ID (--lat LAT --lon LON | --clear)",
		Short: "Set where a box stands, for the console's map (or --clear to take it off the map)",
		Args:  cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			la, lo := floatFlag(cmd, "lat", locLat), floatFlag(cmd, "lon", locLon)
			switch {
			case off && (la != nil || lo != nil):
				return usageErr(errors.New("choose --lat and --lon, or --clear, not both"))
			case !off && la == nil && lo == nil:
				return usageErr(errors.New("give the box's place with --lat and --lon (like --lat 21.03 --lon 105.85), or --clear"))
			}
			if err := api.CheckLocation(la, lo); err != nil {
				return usageErr(err)
			}
			d, err := c.SetLocation(ctx, args[0], la, lo)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			if d.Lat == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "Box %s is off the map now.\n", d.ID)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Box %s is at %s.\n", d.ID, place(d.Lat, d.Lon))
			return nil
		}),
	}
	locate.Flags().Float64Var(&locLat, "lat", 0, "latitude, from -90 to 90 (like 21.03)")
	locate.Flags().Float64Var(&locLon, "lon", 0, "longitude, from -180 to 180 (like 105.85)")
	locate.Flags().BoolVar(&off, "clear", false, "take the box off the map")
	cmd.AddCommand(add, enroll, list, rm, vol, locate)
	return cmd
}

// floatFlag is the value of a float flag if it was given, else nil.
func floatFlag(cmd *cobra.Command, name string, v float64) *float64 {
	if !cmd.Flags().Changed(name) {
		return nil
	}
	return &v
}

// place writes a box's coordinates as "21.03,105.85", or "-" for none.
func place(lat, lon *float64) string {
	if lat == nil || lon == nil {
		return "-"
	}
	return strconv.FormatFloat(*lat, 'f', -1, 64) + "," + strconv.FormatFloat(*lon, 'f', -1, 64)
}

// roundDuration writes d as people do: 24h, 1h30m, 10m.
func roundDuration(d time.Duration) string {
	s := d.Round(time.Minute).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// printEnrolment asks for a code for box id and shows it, with the command
// to type on the box and a QR code of that command.
func printEnrolment(ctx context.Context, c *api.Client, cmd *cobra.Command, g *globals, id string, valid time.Duration) error {
	e, err := c.Enrol(ctx, id, valid)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if g.output == "json" {
		return printJSON(out, e)
	}
	fmt.Fprintf(out, "Box %s: enrolment code %s\n", e.Device, e.Code)
	fmt.Fprintln(out, messages.T(messages.EnrolCode, roundDuration(valid), e.ExpiresAt.Local().Format("2006-01-02 15:04"), e.Server, e.Code))
	qr, err := qrText(e.Command)
	if err != nil {
		return nil // the code above is enough
	}
	fmt.Fprint(out, qr)
	return nil
}

func newGroup(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Group boxes by village or zone"}
	show := func(cmd *cobra.Command, gr any, name string, members []string) error {
		if g.output == "json" {
			return printJSON(cmd.OutOrStdout(), gr)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Group %s: %s\n", name, orDash(strings.Join(members, ", ")))
		return nil
	}
	list := &cobra.Command{
		Use: "list", Short: "List the groups and their boxes", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			gs, err := c.Groups(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), gs)
			}
			rows := [][]string{}
			for _, gr := range gs {
				rows = append(rows, []string{gr.Name, strconv.Itoa(len(gr.Devices)), strings.Join(gr.Devices, ",")})
			}
			return table(cmd.OutOrStdout(), []string{"GROUP", "BOXES", "MEMBERS"}, rows)
		}),
	}
	add := &cobra.Command{
		Use: "add GROUP ID...", Short: "Put boxes in a group (creating it)", Args: cobra.MinimumNArgs(2),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			gr, err := c.AddToGroup(ctx, args[0], args[1:])
			if err != nil {
				return err
			}
			return show(cmd, gr, gr.Name, gr.Devices)
		}),
	}
	rm := &cobra.Command{
		Use: "rm GROUP ID...", Short: "Take boxes out of a group", Args: cobra.MinimumNArgs(2),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			gr, err := c.RemoveFromGroup(ctx, args[0], args[1:])
			if err != nil {
				return err
			}
			return show(cmd, gr, gr.Name, gr.Devices)
		}),
	}
	cmd.AddCommand(list, add, rm)
	return cmd
}

func newMedia(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "media", Short: "Upload and list recordings (MP3, M4A/AAC, Opus, WAV, WMA, AMR, FLAC, a video's sound)"}
	var name, recording string
	add := &cobra.Command{
		Use: "add (FILE | --recording SESSION)", Short: "Upload a recording; the controller brings it to one loudness and makes the light file boxes download",
		Long: "Upload a recording; the controller brings it to one loudness and makes the light file boxes download.\n" +
			"With --recording, add what a live session or relay played (see `loa report --sessions`), to play it again.",
		Args: cobra.MaximumNArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			var m api.MediaInfo
			var err error
			switch {
			case recording != "" && len(args) == 0:
				m, err = c.RecordingMedia(ctx, recording, name)
			case recording == "" && len(args) == 1:
				m, err = uploadFile(ctx, c, args[0], name)
			default:
				return usageErr(errors.New("give a FILE or --recording SESSION"))
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added %s (%s, %.1f s, %s). Its id is:\n%s\n", orDash(m.Name), m.Codec, float64(m.DurationMS)/1000, loudnessNote(m), m.ID)
			return nil
		}),
	}
	add.Flags().StringVar(&name, "name", "", "a name for the file (default: the file name)")
	add.Flags().StringVar(&recording, "recording", "", "add the recording of this live session or relay instead of a file")
	list := &cobra.Command{
		Use: "list", Short: "List the audio files", Args: cobra.NoArgs,
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, _ []string) error {
			ms, err := c.Media(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			rows := [][]string{}
			for _, m := range ms {
				loudness, boxBytes := "-", "converting"
				if m.LoudnessLUFS != nil {
					loudness = fmt.Sprintf("%.1f", *m.LoudnessLUFS)
				}
				if m.Play != nil {
					boxBytes = strconv.FormatInt(m.Play.Size, 10)
				}
				rows = append(rows, []string{m.ID, orDash(m.Name), m.Codec, fmt.Sprintf("%.1fs", float64(m.DurationMS)/1000), loudness,
					strconv.FormatInt(m.Size, 10), boxBytes})
			}
			return table(cmd.OutOrStdout(), []string{"ID", "NAME", "CODEC", "DURATION", "LUFS", "BYTES", "BOX BYTES"}, rows)
		}),
	}
	rm := &cobra.Command{
		Use: "rm ID", Short: "Delete an audio file no schedule uses", Args: cobra.ExactArgs(1),
		RunE: g.staff(func(ctx context.Context, c *api.Client, cmd *cobra.Command, args []string) error {
			if err := c.RemoveMedia(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed media %s.\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(add, list, rm)
	return cmd
}

// loudnessNote says what normalisation did to an upload.
func loudnessNote(m api.MediaInfo) string {
	if m.LoudnessLUFS == nil || m.Play == nil || m.Play.LoudnessLUFS == nil {
		return "loudness not measured yet"
	}
	return fmt.Sprintf("loudness %.1f → %.1f LUFS, boxes download %d kB", *m.LoudnessLUFS, *m.Play.LoudnessLUFS, (m.Play.Size+999)/1000)
}

func uploadFile(ctx context.Context, c *api.Client, path, name string) (api.MediaInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.MediaInfo{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if name == "" {
		name = baseName(path)
	}
	return c.AddMedia(ctx, name, f)
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
