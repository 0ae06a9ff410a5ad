package migrate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress output cadence: a terminal bar redraws often; a log (CI, a file)
// gets a line every few seconds so it stays readable; the percent in
// colcrypt_columns is refreshed for status in another terminal.
const (
	progressLogEvery   = 5 * time.Second
	progressStateEvery = 2 * time.Second
)

// progress counts rows of one table's phase and reports them. Its total
// may be an estimate (progressRows): when the rows done pass it, it grows
// with them.
type progress struct {
	done    atomic.Int64
	total   atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex // orders the bar's updates
	bar     *progressbar.ProgressBar
	onTick  func(done, total int64)
	started time.Time
}

func (e *Engine) newProgress(ctx context.Context, label string, total int64, onTick func(done, total int64)) *progress {
	p := &progress{stop: make(chan struct{}), onTick: onTick, started: time.Now()}
	p.total.Store(total)
	if e.opt.Terminal && e.opt.Progress != nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(e.opt.Progress),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		stateTick := time.NewTicker(progressStateEvery)
		defer stateTick.Stop()
		lastLog := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.stop:
				return
			case <-stateTick.C:
				done, total := p.done.Load(), p.total.Load()
				if p.onTick != nil {
					p.onTick(done, total)
				}
				if p.bar == nil && time.Since(lastLog) >= progressLogEvery {
					lastLog = time.Now()
					elapsed := time.Since(p.started).Seconds()
					rate := float64(done) / max(elapsed, 0.001)
					eta := time.Duration(0)
					if rate > 0 && total > done {
						eta = time.Duration(float64(total-done)/rate) * time.Second
					}
					e.log.Info("progress", "phase", label, "rows", done, "of", total, "rows_per_s", int64(rate), "eta", eta.Round(time.Second))
				}
			}
		}
	}()
	return p
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	done := p.done.Add(n)
	for total := p.total.Load(); done > total; total = p.total.Load() {
		if p.total.CompareAndSwap(total, done) {
			break
		}
	}
	if p.bar != nil {
		p.mu.Lock()
		if done > p.bar.GetMax64() {
			p.bar.ChangeMax64(done)
		}
		_ = p.bar.Add64(n)
		p.mu.Unlock()
	}
}

// expected is the row count the phase counts toward (see progressRows),
// or 0 without a progress.
func (p *progress) expected() int64 {
	if p == nil {
		return 0
	}
	return p.total.Load()
}

// rows is the count of rows done so far: at the end of a phase that
// walked the whole table, its exact row count.
func (p *progress) rows() int64 { return p.done.Load() }

func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
