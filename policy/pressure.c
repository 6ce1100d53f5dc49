/*
 * Pressure controller: keeps one congestion signal (an upstream broker's
 * write latency, or the fill of Sluice's memory budget) under a target by
 * limiting the rate admitted towards it. Pure: no clock, no I/O; the
 * daemon calls sl_ctl_update() every interval (100 ms) with the latest
 * signal, and budget.c turns the admitted rate into class shares.
 *
 * Why AIMD and not a gradient law. A gradient controller (rate scaled by
 * target/latency each step, as in Netflix's concurrency limits) reacts in
 * proportion to the signal, so every bit of noise in the latency becomes
 * noise in the rate, and a latency floor the rate cannot move (a long
 * round trip, not queueing) drives it to the floor anyway, only slower.
 * Additive increase / multiplicative decrease (TCP's law) needs only a
 * yes/no congestion signal, which a hysteresis band makes robust to
 * noise: cuts are geometric, so a step in latency halves the admitted rate
 * within a few cuts (about a second); growth is linear, so recovery probes
 * gently instead of re-creating the overload at once; and AIMD between
 * several senders converges to a fair split, which matters because the
 * classes share what one broker admits.
 *
 * The law, per step:
 *   smoothed = EWMA(signal), alpha 0.3 per 100 ms step (time constant
 *              about 300 ms: one slow batch is not a trend);
 *   congested  when smoothed > target * 1.25, or the broker returned a
 *              throttle time (its quota is a hard "slow down");
 *   calm       when smoothed < target and no throttle; between the two is
 *              a dead band where nothing changes (no oscillation around
 *              the target);
 *   on the first congested step the limit starts at the measured rate
 *   (ref), then each cut multiplies it by 1 - decrease_pct (0.7 by
 *   default, CUBIC's factor: gentler than Reno's 0.5, still halving the
 *   rate in two cuts). Cuts are at least one signal period apart (the
 *   smoothed latency, clamped to 100..1000 ms): the effect of a cut shows in
 *   the latency only after the data already sent drains, so cutting again
 *   sooner would over-react;
 *   while calm, the limit rises by ref / recovery_ms per ms, so the rate
 *   before the episode is back within recovery_ms (2 s default); once the
 *   limit is at least ref and no longer binds (the measured rate is below
 *   80% of it, so the backlog of the held-back sources has drained) and
 *   the latency is below half the target, the controller lets go (no
 *   limit). If the cluster is still overloaded, latency rises again and a
 *   new episode starts from the rate then measured. Why half: a broker
 *   whose capacity is the bottleneck (a saturated link, a slow disk) holds
 *   the latency near the target by itself, since every client's in-flight
 *   window waits in its queue; the limit then stops binding once it climbs
 *   past what the broker takes, and letting go there (as at "below the
 *   target") ended each episode within a second and shared the broker by
 *   connection instead of by class (seen behind a tc-capped link). Below
 *   half the target the queue is gone.
 *   The limit never goes below min_bytes_per_sec, so a limited broker
 *   keeps delivering samples that show when it recovers.
 *
 * A broker's throttle time is a quota, not a queue, and Kafka enforces it
 * by muting the connection (KIP-219): one answer says "throttle T ms",
 * then nothing comes back for T. So:
 *   the throttle is in force, and the step congested, until T has passed
 *   (counting only the steps that carried a throttle made the limit come
 *   and go every half second against a real broker's quota);
 *   cuts are at least min(T, 2 s) apart: the effect of a cut shows only
 *   after the mute;
 *   what the broker acknowledged over the last 11 s (its own quota window)
 *   is the quota whenever we were above it, so for the rest of the episode
 *   no cut goes below one decrease step under that rate (the broker's
 *   window, and the queue's wait in the latency, keep signalling for a
 *   while after the cut that was enough; cutting on them took the limit
 *   to the floor), and the climb aims for that rate (ref), not for the
 *   rate when the episode began;
 *   past ref the climb probes: at 5% of its slope at first, growing as
 *   (time since the last throttle / 4 s)^2 to the full slope (a broker
 *   notices an excess only a second or two late; a quota that went away
 *   is found within a few seconds).
 */
#include "policy_internal.h"

#include <math.h>
#include <string.h>

#define CTL_BAND 0.25
#define CTL_ALPHA 0.3
#define CTL_MIN_GAP_US 100000
#define CTL_MAX_GAP_US 1000000
#define CTL_MEMORY_GAP_US 200000
#define CTL_RELEASE_SLACK 0.8
#define CTL_RELEASE_LEVEL 0.5
#define CTL_BIND 0.95
#define CTL_UNUSED_US 5000000
#define CTL_MAX_THROTTLE_GAP_US 2000000
#define CTL_PROBE_US 4000000.0

static void params_common(sl_ctl_params *p, const sl_policy_pressure *pp)
{
    p->band = CTL_BAND;
    p->alpha = CTL_ALPHA;
    p->decrease = (double)pp->decrease_pct / 100.0;
    p->recovery_us = pp->recovery_ms * 1000;
    p->min_rate = (double)pp->min_bytes_per_sec;
}

void sl_ctl_params_latency(sl_ctl_params *p, const sl_policy_pressure *pp)
{
    params_common(p, pp);
    p->target = (double)pp->latency_target_ms;
    p->release_level = CTL_RELEASE_LEVEL;
    p->min_gap_us = CTL_MIN_GAP_US;
    p->max_gap_us = CTL_MAX_GAP_US;
    p->gap_is_signal = true;
}

/* Buffer fill reacts to a cut within one step (reads stop at once), so a
 * fixed 200 ms gap; the band is narrow because the hard limit is close. */
void sl_ctl_params_memory(sl_ctl_params *p, const sl_policy_pressure *pp)
{
    params_common(p, pp);
    p->target = (double)pp->memory_high_water_pct * 10.0;
    p->release_level = 1.0;
    p->band = 0.05;
    p->alpha = 0.5;
    p->min_gap_us = p->max_gap_us = CTL_MEMORY_GAP_US;
    p->gap_is_signal = false;
}

void sl_ctl_init(sl_ctl *c, int64_t now_us)
{
    memset(c, 0, sizeof(*c));
    c->smoothed = NAN;
    c->last_us = now_us;
    c->last_cut_us = INT64_MIN / 2;
    c->throttle_until_us = INT64_MIN / 2;
}

static int64_t cut_gap(const sl_ctl *c, const sl_ctl_params *p)
{
    double g;

    if (!p->gap_is_signal || isnan(c->smoothed))
        return p->min_gap_us;
    g = c->smoothed * 1000.0;
    return g < (double)p->min_gap_us   ? p->min_gap_us
           : g > (double)p->max_gap_us ? p->max_gap_us
                                       : (int64_t)g;
}

sl_ctl_event sl_ctl_update(sl_ctl *c, const sl_ctl_params *p, int64_t now,
                           const sl_ctl_input *in)
{
    int64_t dt = now - c->last_us, gap;
    double signal = in->signal, throttle_ms = in->throttle_ms;
    double measured = in->measured, base, slope, used;
    bool congested, calm, throttled, slow;

    if (dt < 0)
        dt = 0; /* time going backwards: no time passed */
    if (dt > 1000000)
        dt = 1000000; /* a stalled loop is not a second of calm */
    c->last_us = now;
    if (!isnan(signal) && signal >= 0)
        c->smoothed = isnan(c->smoothed)
                          ? signal
                          : c->smoothed + p->alpha * (signal - c->smoothed);
    if (!(measured >= 0))
        measured = 0;
    /* While a class share holds a source back, the limit binds whatever
     * the total says (that source has a backlog). */
    used = in->held && c->limited ? SL_MAX(measured, c->rate) : measured;

    /* A throttle time is in force for as long as the broker said: it
     * mutes the connection for that time, so the steps until then bring
     * no answers (and no throttle times) and are not calm. */
    if (throttle_ms > 0) {
        int64_t until = now + (int64_t)(throttle_ms * 1000.0);
        if (until > c->throttle_until_us)
            c->throttle_until_us = until;
        c->throttle_gap_us = SL_MIN((int64_t)(throttle_ms * 1000.0),
                                    CTL_MAX_THROTTLE_GAP_US);
    }
    throttled = now < c->throttle_until_us;
    slow = !isnan(c->smoothed) && c->smoothed > p->target * (1 + p->band);
    congested = throttled || slow;
    calm = !throttled && (isnan(c->smoothed) || c->smoothed < p->target);

    if (congested) {
        sl_ctl_event ev = SL_CTL_CUT;
        if (!c->limited) {
            c->limited = true;
            c->rate = c->ref = SL_MAX(measured, p->min_rate);
            c->quota = false;
            c->bound_us = now;
            c->episodes++;
            c->last_cut_us = INT64_MIN / 2;
            ev = SL_CTL_BEGIN;
        }
        c->reason = throttled ? SL_THROTTLE_BROKER_THROTTLE : in->why;
        gap = cut_gap(c, p);
        if (throttled && c->throttle_gap_us > gap)
            gap = c->throttle_gap_us;
        if (now - c->last_cut_us < gap)
            return ev == SL_CTL_BEGIN ? ev : SL_CTL_STEADY;
        /* Cut from what is really admitted when the limit is above it:
         * cutting an unused limit would change nothing for a while. */
        if (used > 0 && used < c->rate)
            c->rate = SL_MAX(used, p->min_rate);
        base = c->rate;
        c->rate = SL_MAX(c->rate * (1 - p->decrease), p->min_rate);
        if ((throttled || c->quota) && in->delivered > 0) {
            /* A throttle is a quota: a fixed rate that the broker enforces
             * by muting us, so what it acknowledges over its muted spells
             * is the quota. Its window (about 10 s in Kafka) keeps the
             * throttles coming, and what waited in the queue keeps the
             * latency up, for a while after the cut that was enough: for
             * the rest of the episode no cut goes below one step under
             * what it takes. The climb aims for that rate, not for the one
             * when the episode began (which may be twice the quota). */
            double takes = in->delivered * (1 - p->decrease);
            c->rate = SL_MAX(c->rate, SL_MIN(base, takes));
            if (throttled)
                c->ref = SL_MAX(in->delivered, p->min_rate);
            c->quota = true;
        }
        c->last_cut_us = now;
        c->cuts++;
        return ev;
    }
    if (!c->limited || !calm)
        return SL_CTL_STEADY;
    /* Between half the target and the target the broker has a queue but
     * not too long a one: climb only while the whole limit is taken (as
     * TCP grows no window it does not fill, RFC 7661). A limit above what a
     * saturated broker takes binds no one, and the broker then shares by
     * connection, not by class. */
    if (c->smoothed >= p->target * p->release_level &&
        measured < c->rate * CTL_BIND) {
        if (now - c->bound_us < CTL_UNUSED_US ||
            used >= c->rate * CTL_RELEASE_SLACK)
            return SL_CTL_STEADY;
        /* unused that long: the latency is the broker's floor, not a
         * queue this limit could shorten */
        c->limited = false;
        c->reason = SL_THROTTLE_NONE;
        return SL_CTL_RELEASE;
    }
    c->bound_us = now;
    slope = SL_MAX(c->ref, p->min_rate) / (double)SL_MAX(p->recovery_us, 1);
    if (c->quota && c->rate >= c->ref) {
        /* Past a quota's rate, probe: slowly at first (the broker's window
         * shows an excess a second or two late), at full slope once
         * CTL_PROBE_US have passed without a throttle (the quota is gone
         * or was raised). */
        double f = (double)(now - c->throttle_until_us) / CTL_PROBE_US;
        f = f < 0.05 ? 0.05 : f > 1 ? 1 : f;
        slope *= f * f;
    }
    c->rate += slope * (double)dt;
    /* Let go only once the limit no longer binds: sources held back during
     * the episode come back with a backlog, and releasing it all at once
     * would recreate the overload. Until it drains, the limit keeps
     * climbing at the same slope. */
    if (c->rate >= c->ref && used < c->rate * CTL_RELEASE_SLACK &&
        !(c->smoothed >= p->target * p->release_level)) {
        c->limited = false;
        c->reason = SL_THROTTLE_NONE;
        return SL_CTL_RELEASE;
    }
    return SL_CTL_RAISE;
}
