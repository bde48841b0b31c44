//go:build chaos

package integration

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// failover is one leader death and the new leader row that followed it.
type failover struct {
	At      time.Duration // since the chaos phase began
	Took    time.Duration // kill → new leader row seen; <0: none within failoverBound
	OldPid  int
	NewPid  int
	Planned bool // the suite aimed at the leader (else a random kill hit it)
}

// chaosSuite holds the processes and everything the report counts.
type chaosSuite struct {
	t        *testing.T
	dir      string
	procURL  string
	cfgPath  string
	pool     *pgxpool.Pool
	pgHost   string
	pgPort   string
	pgVer    string
	pgName   string
	began    time.Time
	stopSupv chan struct{}
	supvDone chan struct{}

	mu            sync.Mutex
	slots         [chaosInstances]*chaosProc
	lastSpawn     [chaosInstances]time.Time
	all           []*chaosProc
	spawns        int
	instanceKills int
	leaderKills   int
	startupExits  int // exited before "run: started" without being killed (e.g. Postgres down)
	crashExits    int // exited after starting without being killed
	exitNotes     []string
	failovers     []failover
}

func (s *chaosSuite) spawnLocked(slot int) {
	s.spawns++
	p, err := spawnChaosProc(s.dir, s.procURL, s.cfgPath, slot, s.spawns)
	if err != nil {
		s.t.Errorf("spawn run: %v", err)
		return
	}
	s.slots[slot] = p
	s.lastSpawn[slot] = time.Now()
	s.all = append(s.all, p)
}

// supervise restarts any process that exited without being killed by the
// suite (and counts it), like a killed one.
func (s *chaosSuite) supervise() {
	defer close(s.supvDone)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stopSupv:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		for i, p := range s.slots {
			if p == nil || !p.isExited() || p.killedBy {
				continue
			}
			if time.Since(s.lastSpawn[i]) < 500*time.Millisecond {
				continue // back off while Postgres is down
			}
			p.killedBy = true // counted once
			if p.isStarted() {
				s.crashExits++
				s.exitNotes = append(s.exitNotes, fmt.Sprintf("t+%s pid %d exited after starting: %v (log %s)\n%s",
					s.since(), p.Pid(), p.ExitErr(), p.LogPath(), indent(p.Tail())))
			} else {
				s.startupExits++
			}
			s.spawnLocked(i)
		}
		s.mu.Unlock()
	}
}

func (s *chaosSuite) since() time.Duration { return time.Since(s.began).Round(time.Millisecond) }

func (s *chaosSuite) livePids() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int32
	for _, p := range s.slots {
		if p != nil && !p.isExited() {
			pids = append(pids, int32(p.Pid()))
		}
	}
	return pids
}

// leader returns the pid of the live instance whose row says it leads.
func (s *chaosSuite) leader(ctx context.Context, after time.Time, not int) (int, bool) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var pid int32
	err := s.pool.QueryRow(qctx, `SELECT pid FROM observer_listeners
		WHERE listener_id = $1 AND role = 'leader' AND pid = ANY($2) AND pid <> $3 AND leader_since > $4
		ORDER BY leader_since DESC LIMIT 1`, chaosListenerID, s.livePids(), not, after).Scan(&pid)
	return int(pid), err == nil
}

// waitLeader polls (every 20ms, at most bound) for a leader row.
func (s *chaosSuite) waitLeader(ctx context.Context, after time.Time, not int, bound time.Duration) (int, time.Time, bool) {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if pid, ok := s.leader(ctx, after, not); ok {
			return pid, time.Now(), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, time.Time{}, false
}

// kill SIGKILLs the instance in slot and restarts it at once; when it was the
// leader it measures the failover.
func (s *chaosSuite) kill(ctx context.Context, slot int, planned bool) {
	s.mu.Lock()
	p := s.slots[slot]
	p.killedBy = true
	s.mu.Unlock()
	victim := p.Pid()
	wasLeader, _ := s.leaderPid(ctx)
	at := time.Now()
	p.Kill()
	s.mu.Lock()
	s.instanceKills++
	if wasLeader == victim {
		s.leaderKills++
	}
	s.spawnLocked(slot)
	s.mu.Unlock()
	if wasLeader != victim {
		return
	}
	f := failover{At: at.Sub(s.began).Round(time.Millisecond), OldPid: victim, Planned: planned, Took: -1}
	if pid, seen, ok := s.waitLeader(ctx, at, victim, failoverBound); ok {
		f.NewPid, f.Took = pid, seen.Sub(at).Round(time.Millisecond)
	} else {
		s.t.Errorf("no new leader within %s after killing leader pid %d at t+%s", failoverBound, victim, f.At)
	}
	s.mu.Lock()
	s.failovers = append(s.failovers, f)
	s.mu.Unlock()
}

func (s *chaosSuite) leaderPid(ctx context.Context) (int, bool) {
	return s.leader(ctx, time.Time{}, 0)
}

// killLeader waits (bounded) for a leader and kills it.
func (s *chaosSuite) killLeader(ctx context.Context) bool {
	pid, _, ok := s.waitLeader(ctx, time.Time{}, 0, failoverBound)
	if !ok {
		s.t.Errorf("no leader to kill at t+%s", s.since())
		return false
	}
	s.mu.Lock()
	slot := -1
	for i, p := range s.slots {
		if p != nil && p.Pid() == pid {
			slot = i
		}
	}
	s.mu.Unlock()
	if slot < 0 {
		return false
	}
	s.kill(ctx, slot, true)
	return true
}

// pgRestart is what the Postgres restart measured.
type pgRestart struct {
	At       time.Duration
	Ready    time.Duration // restart command start → pg_isready
	Leader   time.Duration // → a leader row newer than the restart
	Pipeline time.Duration // → checkpoint past a row written after the restart
}

func (s *chaosSuite) restartPostgres(ctx context.Context) (r pgRestart) {
	t0 := time.Now()
	r.At = t0.Sub(s.began).Round(time.Millisecond)
	r.Ready, r.Leader, r.Pipeline = -1, -1, -1
	cctx, cancel := context.WithTimeout(ctx, recoveryBound)
	out, err := exec.CommandContext(cctx, "pg_ctlcluster", "--skip-systemctl-redirect", s.pgVer, s.pgName, "restart").CombinedOutput()
	cancel()
	if err != nil {
		s.t.Errorf("pg_ctlcluster %s %s restart: %v\n%s", s.pgVer, s.pgName, err, out)
	}
	if err := pgIsReady(ctx, s.pgHost, s.pgPort, recoveryBound); err != nil {
		s.t.Errorf("after restart: %v", err)
		return r
	}
	r.Ready = time.Since(t0).Round(time.Millisecond)
	var horizon int64
	require.Eventually(s.t, func() bool {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return s.pool.QueryRow(qctx, `SELECT coalesce(max(pk_entity_change_log), 0) FROM core.tb_entity_change_log`).Scan(&horizon) == nil
	}, recoveryBound, 100*time.Millisecond, "the test pool reconnects after the restart")
	if _, seen, ok := s.waitLeader(ctx, t0, 0, recoveryBound); ok {
		r.Leader = seen.Sub(t0).Round(time.Millisecond)
	} else {
		s.t.Errorf("no leader within %s of the Postgres restart", recoveryBound)
	}
	deadline := time.Now().Add(recoveryBound)
	for time.Now().Before(deadline) {
		if cp, err := s.checkpoint(ctx); err == nil && cp > horizon {
			r.Pipeline = time.Since(t0).Round(time.Millisecond)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Pipeline < 0 {
		s.t.Errorf("the checkpoint did not pass change %d within %s of the Postgres restart", horizon, recoveryBound)
	}
	return r
}

func (s *chaosSuite) checkpoint(ctx context.Context) (int64, error) {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var cp int64
	err := s.pool.QueryRow(qctx, `SELECT event_id FROM observer_checkpoints WHERE listener_id = $1`, chaosListenerID).Scan(&cp)
	return cp, err
}
