// Command baseline is the Go side of bench/count.sh.
//
//	baseline count [-impl pkoukk|fast] [-workers N] [-o counts.tsv] FILE
//
// reads a Batch API JSONL file and writes "custom_id<TAB>prompt_tokens"
// per line, in input order, counting each body with tokens.Counter.Analyze
// (the cookbook recipe). -impl pkoukk (the default) counts with
// pkoukk/tiktoken-go's own encoder, no cache, on one goroutine: the
// baseline of issue 2. -impl fast uses oairl's counter (stand-in for
// `oairl count` when the binary does not build).
//
//	baseline compare REF.tsv OAIRL.jsonl|OAIRL.tsv
//
// compares per-line counts (the reference's TSV against `oairl count
// --format jsonl` output or another TSV) and prints "lines N, equal M,
// different D" plus the first differences; exit 1 on any difference.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: baseline count|compare ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "count":
		err = count(os.Args[2:])
	case "compare":
		err = compare(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

type line struct {
	CustomID string          `json:"custom_id"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

func count(args []string) error {
	fs := flag.NewFlagSet("count", flag.ExitOnError)
	impl := fs.String("impl", "pkoukk", "pkoukk or fast")
	workers := fs.Int("workers", 1, "goroutines")
	out := fs.String("o", "-", "output TSV")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("count needs one FILE")
	}
	opts := tokens.Options{Registry: models.Default(), AssumeOutput: 1024}
	if *impl == "pkoukk" {
		opts.Reference, opts.NoCache = true, true
	}
	c := tokens.NewCounter(opts)
	in, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer in.Close()
	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	defer bw.Flush()
	r := bufio.NewReaderSize(in, 1<<20)
	const chunk = 64
	for {
		var raws [][]byte
		for len(raws) < chunk {
			b, err := r.ReadBytes('\n')
			if len(b) > 0 {
				raws = append(raws, b)
			}
			if err != nil {
				break
			}
		}
		if len(raws) == 0 {
			return nil
		}
		res := make([]string, len(raws))
		var wg sync.WaitGroup
		next := make(chan int)
		for g := 0; g < *workers; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					var l line
					if err := json.Unmarshal(raws[i], &l); err != nil {
						res[i] = "?\t-1"
						continue
					}
					a := c.Analyze(l.URL, l.Body)
					res[i] = l.CustomID + "\t" + strconv.FormatInt(a.Count.PromptTokens, 10)
				}
			}()
		}
		for i := range raws {
			next <- i
		}
		close(next)
		wg.Wait()
		for _, s := range res {
			bw.WriteString(s)
			bw.WriteByte('\n')
		}
		if len(raws) < chunk {
			return nil
		}
	}
}

func readCounts(path string) (map[string]int64, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		t := sc.Text()
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "{") {
			var r struct {
				CustomID     string `json:"custom_id"`
				PromptTokens int64  `json:"prompt_tokens"`
			}
			if err := json.Unmarshal([]byte(t), &r); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", path, err)
			}
			m[r.CustomID] = r.PromptTokens
			order = append(order, r.CustomID)
			continue
		}
		id, n, ok := strings.Cut(t, "\t")
		if !ok {
			return nil, nil, fmt.Errorf("%s: bad line %q", path, t)
		}
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		m[id] = v
		order = append(order, id)
	}
	return m, order, sc.Err()
}

func compare(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("compare needs REF and OTHER")
	}
	ref, order, err := readCounts(args[0])
	if err != nil {
		return err
	}
	other, _, err := readCounts(args[1])
	if err != nil {
		return err
	}
	equal, diff, missing := 0, 0, 0
	for _, id := range order {
		v, ok := other[id]
		switch {
		case !ok:
			missing++
		case v == ref[id]:
			equal++
		default:
			if diff < 5 {
				fmt.Printf("  %s: reference %d, other %d\n", id, ref[id], v)
			}
			diff++
		}
	}
	fmt.Printf("lines %d, equal %d, different %d, missing %d\n", len(order), equal, diff, missing)
	if diff+missing > 0 {
		return fmt.Errorf("%d lines differ, %d missing", diff, missing)
	}
	return nil
}
