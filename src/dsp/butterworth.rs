//! Digital Butterworth design in second-order sections, matching
//! `scipy.signal.butter(N, Wn, btype, output='sos', fs=fs)` (scipy 1.14.1)
//! section by section.
//!
//! The steps follow scipy's: analog prototype (`buttap`) → prewarped
//! lowpass/highpass/bandpass transform in zero-pole-gain form (`lp2*_zpk`) →
//! bilinear transform (`bilinear_zpk`) → `zpk2sos` with `pairing='nearest'`.
//! Designing in zpk and pairing into sections (never via polynomial
//! coefficients) is what keeps narrow low bands at high rates (0.5–2 Hz at
//! 30 kHz) accurate in f64.

use super::sos::Sos;
use crate::time::SampleRate;

/// Highest supported order; higher orders buy little for EEG/LFP and their
/// design becomes numerically delicate.
pub const MAX_ORDER: usize = 8;

/// Which band a filter passes. Frequencies are in Hz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Band {
    Lowpass { cutoff_hz: f64 },
    Highpass { cutoff_hz: f64 },
    Bandpass { low_hz: f64, high_hz: f64 },
}

/// Why a filter could not be designed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesignError {
    #[error("filter order {order} is out of range; allowed: 1..={MAX_ORDER}")]
    OrderOutOfRange { order: usize },
    #[error("{name} = {value_hz} Hz is not a finite number")]
    NonFinite { name: &'static str, value_hz: f64 },
    #[error("{name} = {value_hz} Hz is out of range; allowed: 0 < {name} < {nyquist_hz} Hz (Nyquist at this rate)")]
    FrequencyOutOfRange {
        name: &'static str,
        value_hz: f64,
        nyquist_hz: f64,
    },
    #[error("band-pass low_hz = {low_hz} Hz must be below high_hz = {high_hz} Hz")]
    InvertedBand { low_hz: f64, high_hz: f64 },
}

/// Design a digital Butterworth filter as second-order sections.
///
/// `order` has scipy's meaning: a low/high-pass of order N has N poles, a
/// band-pass of order N has 2N poles (N sections).
pub fn butterworth(order: usize, band: Band, rate: SampleRate) -> Result<Sos, DesignError> {
    if !(1..=MAX_ORDER).contains(&order) {
        return Err(DesignError::OrderOutOfRange { order });
    }
    let nyquist_hz = rate.nyquist_hz();
    let check = |name: &'static str, value_hz: f64| -> Result<f64, DesignError> {
        if !value_hz.is_finite() {
            Err(DesignError::NonFinite { name, value_hz })
        } else if value_hz <= 0.0 || value_hz >= nyquist_hz {
            Err(DesignError::FrequencyOutOfRange {
                name,
                value_hz,
                nyquist_hz,
            })
        } else {
            // Prewarp the normalised frequency exactly as scipy does (fs = 2).
            let wn = value_hz / nyquist_hz;
            Ok(4.0 * (std::f64::consts::PI * wn / 2.0).tan())
        }
    };

    let prototype_poles = butterworth_prototype_poles(order);
    let analog = match band {
        Band::Lowpass { cutoff_hz } => {
            lowpass_to_lowpass(&prototype_poles, check("cutoff_hz", cutoff_hz)?)
        }
        Band::Highpass { cutoff_hz } => {
            lowpass_to_highpass(&prototype_poles, check("cutoff_hz", cutoff_hz)?)
        }
        Band::Bandpass { low_hz, high_hz } => {
            let low = check("low_hz", low_hz)?;
            let high = check("high_hz", high_hz)?;
            if low_hz >= high_hz {
                return Err(DesignError::InvertedBand { low_hz, high_hz });
            }
            lowpass_to_bandpass(&prototype_poles, (low * high).sqrt(), high - low)
        }
    };
    let digital = bilinear(analog);
    Ok(Sos::from_checked_sections(zpk_to_sos(digital)))
}

/// Minimal complex arithmetic with numpy's operation order, so intermediate
/// values round like scipy's.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const fn real(re: f64) -> Self {
        Self { re, im: 0.0 }
    }
    fn add(self, o: Self) -> Self {
        Self {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    fn sub(self, o: Self) -> Self {
        Self {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
    fn mul(self, o: Self) -> Self {
        Self {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn scale(self, factor: f64) -> Self {
        self.mul(Self::real(factor))
    }
    fn neg(self) -> Self {
        Self {
            re: -self.re,
            im: -self.im,
        }
    }
    fn conj(self) -> Self {
        Self {
            re: self.re,
            im: -self.im,
        }
    }
    fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    /// Smith's division, as numpy's complex divide.
    fn div(self, o: Self) -> Self {
        if o.re.abs() >= o.im.abs() {
            let ratio = o.im / o.re;
            let scale = 1.0 / (o.re + o.im * ratio);
            Self {
                re: (self.re + self.im * ratio) * scale,
                im: (self.im - self.re * ratio) * scale,
            }
        } else {
            let ratio = o.re / o.im;
            let scale = 1.0 / (o.im + o.re * ratio);
            Self {
                re: (self.re * ratio + self.im) * scale,
                im: (self.im * ratio - self.re) * scale,
            }
        }
    }
    /// Principal square root, computed without cancellation (C99 `csqrt`).
    fn sqrt(self) -> Self {
        if self.re == 0.0 && self.im == 0.0 {
            return Self {
                re: 0.0,
                im: self.im,
            };
        }
        let t = ((self.re.abs() + self.abs()) / 2.0).sqrt();
        if self.re >= 0.0 {
            Self {
                re: t,
                im: self.im / (2.0 * t),
            }
        } else {
            Self {
                re: self.im.abs() / (2.0 * t),
                im: t.copysign(self.im),
            }
        }
    }
    /// scipy's `_cplxreal` realness test: imaginary part within 100 eps of |z|.
    fn is_effectively_real(self) -> bool {
        self.im.abs() <= 100.0 * f64::EPSILON * self.abs()
    }
}

fn product(values: &[Complex]) -> Complex {
    values.iter().fold(Complex::real(1.0), |acc, &v| acc.mul(v))
}

/// Zeros, poles and gain of a transfer function.
struct Zpk {
    zeros: Vec<Complex>,
    poles: Vec<Complex>,
    gain: f64,
}

/// Poles of the unit-cutoff analog Butterworth low-pass (`buttap`); no zeros, gain 1.
fn butterworth_prototype_poles(order: usize) -> Vec<Complex> {
    let n = order as f64;
    (0..order)
        .map(|i| {
            // m runs over -N+1, -N+3, ..., N-1; m = 0 (odd N) gives exactly -1.
            let m = 2.0 * i as f64 - n + 1.0;
            // numpy divides the complex angle by 2N as a product with the reciprocal.
            let angle = (std::f64::consts::PI * m) * (1.0 / (2.0 * n));
            Complex {
                re: angle.cos(),
                im: angle.sin(),
            }
            .neg()
        })
        .collect()
}

fn lowpass_to_lowpass(poles: &[Complex], cutoff: f64) -> Zpk {
    Zpk {
        zeros: Vec::new(),
        poles: poles.iter().map(|p| p.scale(cutoff)).collect(),
        gain: cutoff.powf(poles.len() as f64),
    }
}

fn lowpass_to_highpass(poles: &[Complex], cutoff: f64) -> Zpk {
    let negated: Vec<Complex> = poles.iter().map(|p| p.neg()).collect();
    Zpk {
        // The prototype's zeros at infinity move to the origin.
        zeros: vec![Complex::real(0.0); poles.len()],
        poles: poles
            .iter()
            .map(|p| Complex::real(cutoff).div(*p))
            .collect(),
        gain: Complex::real(1.0).div(product(&negated)).re,
    }
}

fn lowpass_to_bandpass(poles: &[Complex], center: f64, bandwidth: f64) -> Zpk {
    let shifted: Vec<Complex> = poles
        .iter()
        .map(|p| p.scale(bandwidth).div(Complex::real(2.0)))
        .collect();
    let offsets: Vec<Complex> = shifted
        .iter()
        .map(|p| p.mul(*p).sub(Complex::real(center * center)).sqrt())
        .collect();
    let upper = shifted.iter().zip(&offsets).map(|(p, d)| p.add(*d));
    let lower = shifted.iter().zip(&offsets).map(|(p, d)| p.sub(*d));
    Zpk {
        // Half the zeros at infinity move to the origin, half stay at infinity.
        zeros: vec![Complex::real(0.0); poles.len()],
        poles: upper.chain(lower).collect(),
        gain: bandwidth.powf(poles.len() as f64),
    }
}

/// Bilinear transform at the normalised rate fs = 2 (the prewarping used fs = 2 too).
fn bilinear(analog: Zpk) -> Zpk {
    let fs2 = Complex::real(4.0);
    let map = |s: &Complex| fs2.add(*s).div(fs2.sub(*s));
    let degree = analog.poles.len() - analog.zeros.len();
    let mut zeros: Vec<Complex> = analog.zeros.iter().map(map).collect();
    // Zeros at infinity land on Nyquist.
    zeros.extend(std::iter::repeat(Complex::real(-1.0)).take(degree));
    let zeros_term: Vec<Complex> = analog.zeros.iter().map(|z| fs2.sub(*z)).collect();
    let poles_term: Vec<Complex> = analog.poles.iter().map(|p| fs2.sub(*p)).collect();
    Zpk {
        zeros,
        poles: analog.poles.iter().map(map).collect(),
        gain: analog.gain * product(&zeros_term).div(product(&poles_term)).re,
    }
}

/// A root after scipy's `_cplxreal`: a real value, or one representative
/// (positive imaginary part) of a conjugate pair.
#[derive(Debug, Clone, Copy)]
enum Root {
    Real(f64),
    Pair(Complex),
}

impl Root {
    fn value(self) -> Complex {
        match self {
            Root::Real(re) => Complex::real(re),
            Root::Pair(c) => c,
        }
    }
    fn is_real(self) -> bool {
        matches!(self, Root::Real(_))
    }
}

/// Split roots into conjugate-pair representatives followed by reals, in
/// `_cplxreal`'s order (pairs by real part then |imag|, reals ascending). The
/// order only matters to break exact ties below, as it does in scipy.
fn conjugate_pairs_then_reals(values: &[Complex]) -> Vec<Root> {
    let mut reals: Vec<f64> = Vec::new();
    let mut upper: Vec<Complex> = Vec::new();
    let mut lower: Vec<Complex> = Vec::new();
    for &v in values {
        if v.is_effectively_real() {
            reals.push(v.re);
        } else if v.im > 0.0 {
            upper.push(v);
        } else {
            lower.push(v);
        }
    }
    let by_real_then_imag = |a: &Complex, b: &Complex| {
        a.re.total_cmp(&b.re)
            .then(a.im.abs().total_cmp(&b.im.abs()))
    };
    upper.sort_by(by_real_then_imag);
    lower.sort_by(by_real_then_imag);
    reals.sort_by(f64::total_cmp);
    // Butterworth roots come in exact conjugate pairs; average like scipy to be safe.
    let pairs = upper.iter().zip(&lower).map(|(u, l)| {
        Root::Pair(Complex {
            re: (u.re + l.re) / 2.0,
            im: (u.im - l.im) / 2.0,
        })
    });
    pairs.chain(reals.into_iter().map(Root::Real)).collect()
}

/// Remove and return the element minimising `key` (first one on ties, like argmin).
fn take_min_by(roots: &mut Vec<Root>, key: impl Fn(Root) -> Option<f64>) -> Option<Root> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &r) in roots.iter().enumerate() {
        if let Some(k) = key(r) {
            if best.map_or(true, |(_, best_k)| k < best_k) {
                best = Some((i, k));
            }
        }
    }
    best.map(|(i, _)| roots.remove(i))
}

fn distance_to_unit_circle(r: Root) -> f64 {
    (1.0 - r.value().abs()).abs()
}

/// Coefficients of (x - a)(x - b) with numpy's `poly` rounding.
fn quadratic(a: Complex, b: Complex) -> [f64; 3] {
    [1.0, (a.neg().add(b.neg())).re, a.mul(b).re]
}

/// Expand a root into the two roots of its section: a pair with its conjugate,
/// or a real with `partner`.
fn section_roots(first: Root, partner: impl FnOnce() -> Complex) -> (Complex, Complex) {
    match first {
        Root::Pair(c) => (c, c.conj()),
        Root::Real(re) => (Complex::real(re), partner()),
    }
}

/// scipy's `zpk2sos(z, p, k, pairing='nearest')` for a digital system with as
/// many zeros as poles (always true after the bilinear transform).
///
/// Sections are filled from last to first, each starting from the remaining
/// pole closest to the unit circle, so the most resonant sections come last;
/// the gain goes into the first section's numerator.
fn zpk_to_sos(zpk: Zpk) -> Vec<[f64; 6]> {
    let mut zeros_c = zpk.zeros;
    let mut poles_c = zpk.poles;
    // An odd count gets an extra pole and zero at the origin ('nearest' pairing).
    if poles_c.len() % 2 == 1 {
        poles_c.push(Complex::real(0.0));
        zeros_c.push(Complex::real(0.0));
    }
    let n_sections = poles_c.len() / 2;
    let mut poles = conjugate_pairs_then_reals(&poles_c);
    let mut zeros = conjugate_pairs_then_reals(&zeros_c);
    let mut sections = vec![[0.0; 6]; n_sections];

    // With equal, even numbers of poles and zeros, reals always come in even
    // numbers, so each step below finds its partner (scipy's special cases
    // for a lone real pole or zero cannot arise under 'nearest' pairing).
    for section in sections.iter_mut().rev() {
        let Some(p1) = take_min_by(&mut poles, |r| Some(distance_to_unit_circle(r))) else {
            break;
        };
        let (pole_a, pole_b) = section_roots(p1, || {
            take_min_by(&mut poles, |r| {
                r.is_real().then(|| distance_to_unit_circle(r))
            })
            .map_or(Complex::real(0.0), Root::value)
        });
        let toward_p1 = |r: Root| r.value().sub(p1.value()).abs();
        let z1 = take_min_by(&mut zeros, |r| Some(toward_p1(r))).map_or(Root::Real(0.0), |z| z);
        let (zero_a, zero_b) = section_roots(z1, || {
            take_min_by(&mut zeros, |r| r.is_real().then(|| toward_p1(r)))
                .map_or(Complex::real(0.0), Root::value)
        });
        let [b0, b1, b2] = quadratic(zero_a, zero_b);
        let [a0, a1, a2] = quadratic(pole_a, pole_b);
        *section = [b0, b1, b2, a0, a1, a2];
    }
    for coefficient in &mut sections[0][..3] {
        *coefficient *= zpk.gain;
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(hz: f64) -> SampleRate {
        SampleRate::new(hz).unwrap()
    }

    #[test]
    fn rejects_bad_parameters_with_named_values() {
        let fs = rate(250.0);
        let lp = Band::Lowpass { cutoff_hz: 10.0 };
        assert_eq!(
            butterworth(0, lp, fs),
            Err(DesignError::OrderOutOfRange { order: 0 })
        );
        assert_eq!(
            butterworth(9, lp, fs),
            Err(DesignError::OrderOutOfRange { order: 9 })
        );
        for bad in [0.0, -1.0, 125.0, 300.0] {
            let err = butterworth(2, Band::Highpass { cutoff_hz: bad }, fs).unwrap_err();
            assert!(
                matches!(
                    err,
                    DesignError::FrequencyOutOfRange {
                        name: "cutoff_hz",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("125 Hz"), "{err}");
        }
        let err = butterworth(
            2,
            Band::Bandpass {
                low_hz: f64::NAN,
                high_hz: 16.0,
            },
            fs,
        )
        .unwrap_err();
        assert!(matches!(err, DesignError::NonFinite { name: "low_hz", .. }));
        let err = butterworth(
            2,
            Band::Bandpass {
                low_hz: 16.0,
                high_hz: 11.0,
            },
            fs,
        )
        .unwrap_err();
        assert_eq!(
            err,
            DesignError::InvertedBand {
                low_hz: 16.0,
                high_hz: 11.0
            }
        );
        assert!(err.to_string().contains("low_hz = 16 Hz"));
    }

    #[test]
    fn complex_sqrt_is_principal_and_accurate() {
        let cases = [
            (-4.0, 0.0, 0.0, 2.0),
            (3.0, 4.0, 2.0, 1.0),
            (3.0, -4.0, 2.0, -1.0),
            (-3.0, -4.0, 1.0, -2.0),
        ];
        for (re, im, want_re, want_im) in cases {
            let root = Complex { re, im }.sqrt();
            assert_eq!((root.re, root.im), (want_re, want_im), "sqrt({re}{im:+}i)");
        }
    }
}
