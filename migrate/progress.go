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

// progress counts rows of one table's phase and reports them.
type progress struct {
	done    atomic.Int64
	total   int64
	stop    chan struct{}
	wg      sync.WaitGroup
	bar     *progressbar.ProgressBar
	onTick  func(done int64)
	started time.Time
}

func (e *Engine) newProgress(ctx context.Context, label string, total int64, onTick func(done int64)) *progress {
	p := &progress{total: total, stop: make(chan struct{}), onTick: onTick, started: time.Now()}
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
				done := p.done.Load()
				if p.onTick != nil {
					p.onTick(done)
				}
				if p.bar == nil && time.Since(lastLog) >= progressLogEvery {
					lastLog = time.Now()
					elapsed := time.Since(p.started).Seconds()
					rate := float64(done) / max(elapsed, 0.001)
					eta := time.Duration(0)
					if rate > 0 && p.total > done {
						eta = time.Duration(float64(p.total-done)/rate) * time.Second
					}
					e.log.Info("progress", "phase", label, "rows", done, "of", p.total, "rows_per_s", int64(rate), "eta", eta.Round(time.Second))
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
	p.done.Add(n)
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

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
