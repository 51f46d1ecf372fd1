// latsink: the webhook of the latency scenario (bench/run.sh).
//
// Answers every POST with {"code":0}, like the ops platform, and records
// produce→webhook latency: arrival time (after the body is read) minus the
// send time that bench/lat_producer.py put in the event's df_dimension_tags
// as sent_ns (kbridge copies the tags into the alert's alertDims). Events
// tagged bench_phase=warmup are answered but not counted.
//
//	GET /stats  → {"count":…, "warmup":…, "p50_ms":…, "p99_ms":…, "max_ms":…,
//	               "handler_p99_us":…}  (handler_*: the sink's own time per request)
//	GET /samples → "arrival_unix_ns latency_ns" per counted event
//
// Standard library only, so it builds offline.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

var (
	mu       sync.Mutex
	lat      []int64 // ns
	arrival  []int64 // unix ns, parallel to lat
	handler  []int64 // ns
	warmup   int64
	unparsed int64
)

var sentKey = []byte(`"sent_ns":`)
var warmKey = []byte(`"bench_phase":"warmup"`)
var answer = []byte(`{"code":0}`)

func sentNs(body []byte) (int64, bool) {
	i := bytes.Index(body, sentKey)
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(sentKey):]
	rest = bytes.TrimLeft(rest, " \"")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

func alerts(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, _ := io.ReadAll(r.Body)
	arrived := time.Now().UnixNano()
	w.Header().Set("Content-Type", "application/json")
	w.Write(answer)
	sent, ok := sentNs(body)
	isWarm := bytes.Contains(body, warmKey)
	took := time.Since(start).Nanoseconds()
	mu.Lock()
	switch {
	case !ok:
		unparsed++
	case isWarm:
		warmup++
	default:
		lat = append(lat, arrived-sent)
		arrival = append(arrival, arrived)
		handler = append(handler, took)
	}
	mu.Unlock()
}

func pct(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	if k < 0 {
		k = 0
	}
	return sorted[k]
}

func stats(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	l := append([]int64(nil), lat...)
	h := append([]int64(nil), handler...)
	wu, un := warmup, unparsed
	mu.Unlock()
	sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
	sort.Slice(h, func(a, b int) bool { return h[a] < h[b] })
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	out := map[string]any{
		"count": len(l), "warmup": wu, "unparsed": un,
		"p50_ms": ms(pct(l, 50)), "p90_ms": ms(pct(l, 90)), "p99_ms": ms(pct(l, 99)),
		"p999_ms": ms(pct(l, 99.9)), "min_ms": 0.0, "max_ms": 0.0,
		"handler_p99_us": float64(pct(h, 99)) / 1e3, "handler_max_us": 0.0,
	}
	if len(l) > 0 {
		out["min_ms"] = ms(l[0])
		out["max_ms"] = ms(l[len(l)-1])
		out["handler_max_us"] = float64(h[len(h)-1]) / 1e3
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// samples: one line per counted event, "arrival_unix_ns latency_ns", for
// looking at when the slow ones happened.
func samples(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	l := append([]int64(nil), lat...)
	a := append([]int64(nil), arrival...)
	mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	buf := make([]byte, 0, 40*len(l))
	for i := range l {
		buf = strconv.AppendInt(buf, a[i], 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, l[i], 10)
		buf = append(buf, '\n')
	}
	w.Write(buf)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18481", "listen address")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", stats)
	mux.HandleFunc("/samples", samples)
	mux.HandleFunc("/", alerts)
	log.Printf("latsink listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
