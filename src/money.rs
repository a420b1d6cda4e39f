//! Exact money: nano-dollars for API costs, minor units for invoices.
//!
//! Per-token prices are finer than a micro-dollar, so API costs travel as
//! decimal strings with up to 9 fraction digits and are stored as integer
//! nano-USD (`cost_nusd`). Binary floats never hold money anywhere in mb
//! (DESIGN.md section 4); the only conversions are the exact ones here.
//!
//! Invoice amounts are integers of the currency's minor unit as Stripe
//! counts it (<https://docs.stripe.com/currencies>, "Minor units in API
//! amounts"): 2 decimals for most currencies, none for the zero-decimal ones
//! (JPY 4,990 is `amount=4990`, not 499000). [`minor_exponent`] is the one
//! table; currencies where Stripe adds rules of its own (three-decimal ones
//! need a last digit of 0, ISK/HUF/TWD/UGX have special cases) are refused
//! rather than billed by a guess.

use rust_decimal::Decimal;

/// Nano-units per unit (10^9).
pub const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// Parse a non-negative decimal string with at most 9 fraction digits into
/// nano-units. No sign, exponent, spaces or thousands separators: the wire
/// format is exact, and anything else is a producer bug worth rejecting.
pub fn parse_nanos(s: &str) -> Result<i64, String> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (s.contains('.') && !digits(frac)) {
        return Err(format!(
            "{s:?} is not a plain non-negative decimal (like \"0.2808\")"
        ));
    }
    if frac.len() > 9 {
        return Err(format!("{s:?} has more than 9 fraction digits"));
    }
    let too_big = || format!("{s:?} is too large");
    let whole: i64 = int.parse().map_err(|_| too_big())?;
    let mut f: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        f += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    whole
        .checked_mul(NANOS_PER_UNIT)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(too_big)
}

/// Format nano-units as a decimal string without trailing zeros
/// (`280800000` -> `"0.2808"`, `0` -> `"0"`). Inverse of [`parse_nanos`].
pub fn format_nanos(n: i64) -> String {
    let neg = n < 0;
    let a = n.unsigned_abs();
    let whole = a / NANOS_PER_UNIT as u64;
    let frac = a % NANOS_PER_UNIT as u64;
    let mut s = if neg {
        String::from("-")
    } else {
        String::new()
    };
    s.push_str(&whole.to_string());
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// Format nano-units with exactly `places` fraction digits, rounding half
/// away from zero (for display columns such as the 4-decimal CSV cost).
pub fn format_nanos_places(n: i64, places: u32) -> String {
    let d = Decimal::from_i128_with_scale(i128::from(n), 9);
    let r = d.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    format!("{:.*}", places as usize, r)
}

/// Format an amount in minor units (cents) as `123.45`.
pub fn format_minor(m: i64) -> String {
    let neg = m < 0;
    let a = m.unsigned_abs();
    format!("{}{}.{:02}", if neg { "-" } else { "" }, a / 100, a % 100)
}

/// Parse a decimal money amount in major units (`"299"`, `"299.00"`) into
/// minor units (cents). At most 2 fraction digits: a plan price of
/// 299.001 EUR cannot be invoiced and must be fixed in the config.
pub fn parse_minor(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !ok(int) || (s.contains('.') && !ok(frac)) || frac.len() > 2 {
        return Err(format!(
            "{s:?} is not an amount with at most 2 decimals (like \"299.00\")"
        ));
    }
    let whole: i64 = int.parse().map_err(|_| format!("{s:?} is too large"))?;
    let f: i64 = format!("{frac:0<2}").parse().unwrap_or(0);
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(f))
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// ISO 4217 codes whose minor unit is 1/100 (the common case), as listed by
/// ISO 4217 and accepted by Stripe.
const TWO_DECIMALS: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CNY",
    "COP", "CRC", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "IDR", "ILS", "INR", "JMD", "KES",
    "KGS", "KHR", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MKD", "MMK",
    "MNT", "MOP", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD",
    "SCR", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SZL", "THB", "TJS", "TOP", "TRY", "TTD",
    "TZS", "UAH", "USD", "UYU", "UZS", "WST", "XCD", "YER", "ZAR", "ZMW",
];

/// Stripe's zero-decimal currencies (docs.stripe.com/currencies,
/// "Zero-decimal currencies"), without UGX, which Stripe lists as a special
/// case too.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF",
    "XOF", "XPF",
];

/// The number of decimals of `code`'s minor unit (2 for EUR, 0 for JPY), or
/// why mb does not invoice in it.
pub fn minor_exponent(code: &str) -> Result<u32, String> {
    if TWO_DECIMALS.contains(&code) {
        Ok(2)
    } else if ZERO_DECIMALS.contains(&code) {
        Ok(0)
    } else if ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"].contains(&code) {
        Err(format!(
            "{code} has three decimals and Stripe wants its amounts rounded to tens \
             (docs.stripe.com/currencies); mb does not invoice in three-decimal currencies"
        ))
    } else if ["HUF", "ISK", "TWD", "UGX"].contains(&code) {
        Err(format!(
            "{code} is one of Stripe's special-case currencies (docs.stripe.com/currencies); \
             mb does not invoice in it"
        ))
    } else {
        Err(format!(
            "{code:?} is not an ISO 4217 currency mb can invoice in (like EUR, USD, GBP, JPY)"
        ))
    }
}

/// Parse a money amount in major units (`"299.00"`, JPY `"4990"`) into
/// minor units of a currency with `exp` decimals. More decimals than the
/// currency has is an error, never a silent rounding.
pub fn parse_major(s: &str, exp: u32) -> Result<i64, String> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !ok(int) || (s.contains('.') && !ok(frac)) || frac.len() > exp as usize {
        return Err(if exp == 0 {
            format!("{s:?} is not a whole amount (this currency has no decimals)")
        } else {
            format!("{s:?} is not an amount with at most {exp} decimals (like \"299.00\")")
        });
    }
    let whole: i64 = int.parse().map_err(|_| format!("{s:?} is too large"))?;
    let f: i64 = if exp == 0 {
        0
    } else {
        format!("{frac:0<width$}", width = exp as usize)
            .parse()
            .unwrap_or(0)
    };
    whole
        .checked_mul(10i64.pow(exp))
        .and_then(|w| w.checked_add(f))
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Format minor units of a currency with `exp` decimals (`4990` JPY ->
/// `4990`, `29950` EUR -> `299.50`).
pub fn format_minor_exp(m: i64, exp: u32) -> String {
    if exp == 0 {
        return m.to_string();
    }
    let neg = m < 0;
    let a = m.unsigned_abs();
    let p = 10u64.pow(exp);
    format!(
        "{}{}.{:0w$}",
        if neg { "-" } else { "" },
        a / p,
        a % p,
        w = exp as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_parse_and_format() {
        assert_eq!(parse_nanos("0.2808"), Ok(280_800_000));
        assert_eq!(parse_nanos("12"), Ok(12_000_000_000));
        assert_eq!(parse_nanos("0.000000001"), Ok(1));
        assert!(parse_nanos("0.0000000001").is_err());
        assert!(parse_nanos("-1").is_err());
        assert!(parse_nanos("1e3").is_err());
        assert!(parse_nanos(".5").is_err());
        assert!(parse_nanos("5.").is_err());
        assert!(parse_nanos("99999999999999").is_err());
        assert_eq!(format_nanos(280_800_000), "0.2808");
        assert_eq!(format_nanos(0), "0");
        assert_eq!(format_nanos(12_000_000_001), "12.000000001");
        assert_eq!(format_nanos_places(280_850_000, 4), "0.2809");
        assert_eq!(format_nanos_places(0, 4), "0.0000");
    }

    #[test]
    fn minor_units() {
        assert_eq!(parse_minor("299"), Ok(29900));
        assert_eq!(parse_minor("299.5"), Ok(29950));
        assert_eq!(parse_minor("833.00"), Ok(83300));
        assert!(parse_minor("1.001").is_err());
        assert_eq!(format_minor(29950), "299.50");
        assert_eq!(format_minor(-5), "-0.05");
    }

    #[test]
    fn currency_exponents() {
        assert_eq!(minor_exponent("EUR"), Ok(2));
        assert_eq!(minor_exponent("JPY"), Ok(0));
        assert!(minor_exponent("KWD")
            .unwrap_err()
            .contains("three decimals"));
        assert!(minor_exponent("ISK").unwrap_err().contains("special-case"));
        assert!(minor_exponent("XYZ").is_err());
        assert_eq!(parse_major("4990", 0), Ok(4990));
        assert!(parse_major("4990.5", 0).is_err());
        assert_eq!(parse_major("299.5", 2), Ok(29950));
        assert_eq!(format_minor_exp(4990, 0), "4990");
        assert_eq!(format_minor_exp(29950, 2), "299.50");
        assert_eq!(format_minor_exp(-5, 2), "-0.05");
    }
}
