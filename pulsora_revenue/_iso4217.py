"""ISO 4217 active currency codes and their minor units.

Source: ISO 4217 list one (current currency and funds codes), as published by SIX
Financial Information AG, edition dated 2026-01-01. Entries whose minor unit is
"N.A." are excluded: the precious metals (XAG, XAU, XPD, XPT), the bond-market and
supranational units of account (XBA, XBB, XBC, XBD, XDR, XSU, XUA) and the testing
and "no currency" codes (XTS, XXX). Funds codes that do have a minor unit (BOV, CHE,
CHW, CLF, COU, MXV, USN, UYI, UYW) are included.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["MINOR_UNITS"]

# Withdrawn codes are left out. The 2026-01-01 edition lists ANG (Netherlands
# Antillean guilder; replaced by XCG, withdrawn 2025-03), HRK (Croatian kuna; replaced
# by EUR, withdrawn 2023-01), SLL (old Sierra Leonean leone; replaced by SLE,
# withdrawn 2023-12) and ZWL (Zimbabwe dollar; replaced by ZWG, withdrawn 2024-09)
# only in list three (historic denominations), so they are no longer active. The same
# applies to CUC, MRO, STD, VEF and BYR.
#
# Values are the ISO minor units, not the decimals commonly displayed: CLDR, for
# example, displays 0 decimals for AFN, ALL, COP, HUF, IDR, IQD, IRR, KPW, LAK, LBP,
# MGA, MMK, SOS, SYP and YER, where ISO 4217 defines 2 (3 for IQD).
#
# Alphabetic code -> number of decimal places of the minor unit (0, 2, 3 or 4).
MINOR_UNITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "AED": 2,
        "AFN": 2,
        "ALL": 2,
        "AMD": 2,
        "AOA": 2,
        "ARS": 2,
        "AUD": 2,
        "AWG": 2,
        "AZN": 2,
        "BAM": 2,
        "BBD": 2,
        "BDT": 2,
        "BHD": 3,
        "BIF": 0,
        "BMD": 2,
        "BND": 2,
        "BOB": 2,
        "BOV": 2,  # funds code (Mvdol)
        "BRL": 2,
        "BSD": 2,
        "BTN": 2,
        "BWP": 2,
        "BYN": 2,
        "BZD": 2,
        "CAD": 2,
        "CDF": 2,
        "CHE": 2,  # funds code (WIR Euro)
        "CHF": 2,
        "CHW": 2,  # funds code (WIR Franc)
        "CLF": 4,  # funds code (Unidad de Fomento)
        "CLP": 0,
        "CNY": 2,
        "COP": 2,
        "COU": 2,  # funds code (Unidad de Valor Real)
        "CRC": 2,
        "CUP": 2,
        "CVE": 2,
        "CZK": 2,
        "DJF": 0,
        "DKK": 2,
        "DOP": 2,
        "DZD": 2,
        "EGP": 2,
        "ERN": 2,
        "ETB": 2,
        "EUR": 2,
        "FJD": 2,
        "FKP": 2,
        "GBP": 2,
        "GEL": 2,
        "GHS": 2,
        "GIP": 2,
        "GMD": 2,
        "GNF": 0,
        "GTQ": 2,
        "GYD": 2,
        "HKD": 2,
        "HNL": 2,
        "HTG": 2,
        "HUF": 2,
        "IDR": 2,
        "ILS": 2,
        "INR": 2,
        "IQD": 3,
        "IRR": 2,
        "ISK": 0,
        "JMD": 2,
        "JOD": 3,
        "JPY": 0,
        "KES": 2,
        "KGS": 2,
        "KHR": 2,
        "KMF": 0,
        "KPW": 2,
        "KRW": 0,
        "KWD": 3,
        "KYD": 2,
        "KZT": 2,
        "LAK": 2,
        "LBP": 2,
        "LKR": 2,
        "LRD": 2,
        "LSL": 2,
        "LYD": 3,
        "MAD": 2,
        "MDL": 2,
        "MGA": 2,
        "MKD": 2,
        "MMK": 2,
        "MNT": 2,
        "MOP": 2,
        "MRU": 2,  # replaced MRO in 2018
        "MUR": 2,
        "MVR": 2,
        "MWK": 2,
        "MXN": 2,
        "MXV": 2,  # funds code (Mexican Unidad de Inversion)
        "MYR": 2,
        "MZN": 2,
        "NAD": 2,
        "NGN": 2,
        "NIO": 2,
        "NOK": 2,
        "NPR": 2,
        "NZD": 2,
        "OMR": 3,
        "PAB": 2,
        "PEN": 2,
        "PGK": 2,
        "PHP": 2,
        "PKR": 2,
        "PLN": 2,
        "PYG": 0,
        "QAR": 2,
        "RON": 2,
        "RSD": 2,
        "RUB": 2,
        "RWF": 0,
        "SAR": 2,
        "SBD": 2,
        "SCR": 2,
        "SDG": 2,
        "SEK": 2,
        "SGD": 2,
        "SHP": 2,
        "SLE": 2,  # replaced SLL (withdrawn 2023-12)
        "SOS": 2,
        "SRD": 2,
        "SSP": 2,
        "STN": 2,  # replaced STD in 2018
        "SVC": 2,
        "SYP": 2,
        "SZL": 2,
        "THB": 2,
        "TJS": 2,
        "TMT": 2,
        "TND": 3,
        "TOP": 2,
        "TRY": 2,
        "TTD": 2,
        "TWD": 2,
        "TZS": 2,
        "UAH": 2,
        "UGX": 0,
        "USD": 2,
        "USN": 2,  # funds code (US Dollar next day)
        "UYI": 0,  # funds code (Uruguay Peso en Unidades Indexadas)
        "UYU": 2,
        "UYW": 4,  # funds code (Unidad Previsional)
        "UZS": 2,
        "VED": 2,  # Bolivar Soberano (digital); active alongside VES
        "VES": 2,  # replaced VEF in 2018
        "VND": 0,
        "VUV": 0,
        "WST": 2,
        "XAD": 2,  # Arab Accounting Dinar (Arab Monetary Fund); has a minor unit
        "XAF": 0,
        "XCD": 2,
        "XCG": 2,  # Caribbean Guilder; replaced ANG in 2025
        "XOF": 0,
        "XPF": 0,
        "YER": 2,
        "ZAR": 2,
        "ZMW": 2,
        "ZWG": 2,  # Zimbabwe Gold; replaced ZWL in 2024
    }
)
