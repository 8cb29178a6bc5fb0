package console

import (
	"math"
	"strconv"
	"strings"
)

// The map is an SVG drawn on the server in Web Mercator, the projection of
// OpenStreetMap-style tiles: with a tile source the tiles lie under the
// pins, without one (or with no internet) the pins stand on a plain
// background in the same places. No script and no map library.
const (
	mapW, mapH = 720, 420
	mapPad     = 40
	tileSize   = 256
	maxZoom    = 17
)

type boxMap struct {
	W, H  int
	Tiles []mapTile
	Pins  []mapPin
	Plain bool
}

type mapTile struct {
	URL  string
	X, Y float64
}

type mapPin struct {
	ID, Class string
	X, Y      float64
}

// mercator is the point (lat, lon) in pixels of the world map at zoom z.
func mercator(lat, lon float64, z int) (x, y float64) {
	size := tileSize * math.Exp2(float64(z))
	lat = max(-85.0511, min(85.0511, lat))
	phi := lat * math.Pi / 180
	x = (lon + 180) / 360 * size
	y = (1 - math.Log(math.Tan(phi)+1/math.Cos(phi))/math.Pi) / 2 * size
	return x, y
}

// boxMap places the boxes that have coordinates; nil when none has.
func (c *Console) boxMap(rows []boxRow) *boxMap {
	var placed []boxRow
	for _, r := range rows {
		if r.Lat != nil && r.Lon != nil {
			placed = append(placed, r)
		}
	}
	if len(placed) == 0 {
		return nil
	}
	// The deepest zoom at which every box fits inside the padding.
	z := maxZoom
	for ; z > 0; z-- {
		x0, y0, x1, y1 := bounds(placed, z)
		if x1-x0 <= mapW-2*mapPad && y1-y0 <= mapH-2*mapPad {
			break
		}
	}
	x0, y0, x1, y1 := bounds(placed, z)
	ox, oy := (x0+x1)/2-mapW/2, (y0+y1)/2-mapH/2
	m := &boxMap{W: mapW, H: mapH, Plain: c.opts.Tiles == ""}
	for _, r := range placed {
		x, y := mercator(*r.Lat, *r.Lon, z)
		class := "pin-off"
		if r.Online {
			class = "pin-on"
			if r.Playing != nil {
				class = "pin-playing"
			}
		}
		m.Pins = append(m.Pins, mapPin{ID: r.ID, Class: class, X: round1(x - ox), Y: round1(y - oy)})
	}
	if m.Plain {
		return m
	}
	n := int(math.Exp2(float64(z)))
	for ty := int(math.Floor(oy / tileSize)); float64(ty*tileSize) < oy+mapH; ty++ {
		if ty < 0 || ty >= n {
			continue
		}
		for tx := int(math.Floor(ox / tileSize)); float64(tx*tileSize) < ox+mapW; tx++ {
			m.Tiles = append(m.Tiles, mapTile{URL: tileURL(c.opts.Tiles, z, ((tx%n)+n)%n, ty),
				X: float64(tx*tileSize) - ox, Y: float64(ty*tileSize) - oy})
		}
	}
	return m
}

func bounds(rows []boxRow, z int) (x0, y0, x1, y1 float64) {
	x0, y0 = math.Inf(1), math.Inf(1)
	x1, y1 = math.Inf(-1), math.Inf(-1)
	for _, r := range rows {
		x, y := mercator(*r.Lat, *r.Lon, z)
		x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
	}
	return
}

func tileURL(template string, z, x, y int) string {
	return strings.NewReplacer("{z}", strconv.Itoa(z), "{x}", strconv.Itoa(x), "{y}", strconv.Itoa(y)).Replace(template)
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
