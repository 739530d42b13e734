//! Hang-up causes: the Q.850 names CDRs and events carry (`NORMAL_CLEARING`, `USER_BUSY`, …),
//! and their mapping to and from SIP status codes between the legs of a call.
//!
//! The names and the SIP mapping follow RFC 3398 (ISDN User Part to SIP) and the conventions
//! FreeSWITCH gave FSGui's CDRs, so existing reports keep reading the same words: a callee's
//! 486 becomes `USER_BUSY` in the CDR and 486 to the caller; a ring timeout is `NO_ANSWER`
//! and 480; a caller who hangs up while it rings is `ORIGINATOR_CANCEL` (487). What this
//! module does not do: decide when a call ends (the call engine) or write the CDR.

/// Why a call or leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HangupCause {
    UnallocatedNumber,
    NoRouteDestination,
    NormalClearing,
    UserBusy,
    NoUserResponse,
    NoAnswer,
    CallRejected,
    NumberChanged,
    DestinationOutOfOrder,
    InvalidNumberFormat,
    NormalTemporaryFailure,
    NetworkOutOfOrder,
    SwitchCongestion,
    OutgoingCallBarred,
    ServiceUnavailable,
    ServiceNotImplemented,
    IncompatibleDestination,
    RecoveryOnTimerExpire,
    Interworking,
    OriginatorCancel,
    UserNotRegistered,
    SystemShutdown,
    LoseRace,
    /// The leg's party transferred the call (REFER) and left it.
    BlindTransfer,
    /// The leg's party joined its two calls (REFER with Replaces) and left them.
    AttendedTransfer,
    /// A party sent no RTP for the configured time (FreeSWITCH's name, kept for reports).
    MediaTimeout,
    /// Another phone took the leg's place (an INVITE with Replaces).
    PickedOff,
}

impl HangupCause {
    /// The name written in CDRs and events.
    pub fn name(self) -> &'static str {
        use HangupCause::*;
        match self {
            UnallocatedNumber => "UNALLOCATED_NUMBER",
            NoRouteDestination => "NO_ROUTE_DESTINATION",
            NormalClearing => "NORMAL_CLEARING",
            UserBusy => "USER_BUSY",
            NoUserResponse => "NO_USER_RESPONSE",
            NoAnswer => "NO_ANSWER",
            CallRejected => "CALL_REJECTED",
            NumberChanged => "NUMBER_CHANGED",
            DestinationOutOfOrder => "DESTINATION_OUT_OF_ORDER",
            InvalidNumberFormat => "INVALID_NUMBER_FORMAT",
            NormalTemporaryFailure => "NORMAL_TEMPORARY_FAILURE",
            NetworkOutOfOrder => "NETWORK_OUT_OF_ORDER",
            SwitchCongestion => "SWITCH_CONGESTION",
            OutgoingCallBarred => "OUTGOING_CALL_BARRED",
            ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ServiceNotImplemented => "SERVICE_NOT_IMPLEMENTED",
            IncompatibleDestination => "INCOMPATIBLE_DESTINATION",
            RecoveryOnTimerExpire => "RECOVERY_ON_TIMER_EXPIRE",
            Interworking => "INTERWORKING",
            OriginatorCancel => "ORIGINATOR_CANCEL",
            UserNotRegistered => "USER_NOT_REGISTERED",
            SystemShutdown => "SYSTEM_SHUTDOWN",
            LoseRace => "LOSE_RACE",
            BlindTransfer => "BLIND_TRANSFER",
            AttendedTransfer => "ATTENDED_TRANSFER",
            MediaTimeout => "MEDIA_TIMEOUT",
            PickedOff => "PICKED_OFF",
        }
    }

    /// The Q.850 cause value (the `Reason: Q.850;cause=` of RFC 3326). Causes outside
    /// Q.850 (originator cancel, not registered, lose race) carry the values FreeSWITCH
    /// gave them.
    pub fn q850(self) -> u16 {
        use HangupCause::*;
        match self {
            UnallocatedNumber => 1,
            NoRouteDestination => 3,
            NormalClearing => 16,
            UserBusy => 17,
            NoUserResponse => 18,
            NoAnswer => 19,
            CallRejected => 21,
            NumberChanged => 22,
            DestinationOutOfOrder => 27,
            InvalidNumberFormat => 28,
            NormalTemporaryFailure => 41,
            NetworkOutOfOrder => 38,
            SwitchCongestion => 42,
            OutgoingCallBarred => 52,
            ServiceUnavailable => 63,
            ServiceNotImplemented => 79,
            IncompatibleDestination => 88,
            RecoveryOnTimerExpire => 102,
            Interworking => 127,
            OriginatorCancel => 487,
            UserNotRegistered => 606,
            SystemShutdown => 503,
            LoseRace => 502,
            // Not ISDN causes: a transferor's leg ends normally; lost media is a timer that
            // ran out.
            BlindTransfer | AttendedTransfer | PickedOff => 16,
            MediaTimeout => 102,
        }
    }

    /// The cause for a callee's final SIP status (RFC 3398 §8.2.6.1 and FSGui's usage).
    pub fn from_sip_status(status: u16) -> HangupCause {
        use HangupCause::*;
        match status {
            200..=299 => NormalClearing,
            401 | 402 | 403 | 407 | 603 => CallRejected,
            404 => UnallocatedNumber,
            485 | 604 => NoRouteDestination,
            408 | 504 => RecoveryOnTimerExpire,
            410 => NumberChanged,
            480 => NoUserResponse,
            484 => InvalidNumberFormat,
            486 | 600 => UserBusy,
            487 => OriginatorCancel,
            488 | 606 => IncompatibleDestination,
            502 => NetworkOutOfOrder,
            503 => NormalTemporaryFailure,
            405 => ServiceUnavailable,
            406 | 415 | 501 => ServiceNotImplemented,
            413 | 414 | 416 | 420 | 421 | 423 | 505 | 513 => Interworking,
            400 | 481 | 500 => NormalTemporaryFailure,
            _ => NormalTemporaryFailure,
        }
    }

    /// The SIP status the caller is given for a call that failed with this cause (RFC 3398
    /// §7.2.4.1, and the B2BUA practice of passing the callee's busy/decline on).
    pub fn sip_status(self) -> u16 {
        use HangupCause::*;
        match self {
            UnallocatedNumber => 404,
            NoRouteDestination => 404,
            NormalClearing => 480,
            UserBusy => 486,
            NoUserResponse | NoAnswer | UserNotRegistered => 480,
            CallRejected => 603,
            NumberChanged => 410,
            DestinationOutOfOrder => 502,
            InvalidNumberFormat => 484,
            NormalTemporaryFailure => 503,
            NetworkOutOfOrder => 502,
            SwitchCongestion => 503,
            OutgoingCallBarred => 403,
            ServiceUnavailable => 503,
            ServiceNotImplemented => 501,
            IncompatibleDestination => 488,
            RecoveryOnTimerExpire | MediaTimeout => 408,
            Interworking => 500,
            OriginatorCancel => 487,
            SystemShutdown => 503,
            LoseRace => 487,
            BlindTransfer | AttendedTransfer | PickedOff => 480,
        }
    }

    /// `Reason` header value for a BYE or CANCEL carrying this cause (RFC 3326).
    pub fn reason_header(self) -> String {
        format!("Q.850;cause={};text=\"{}\"", self.q850(), self.name())
    }
}

impl std::fmt::Display for HangupCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_outcomes_map_both_ways_as_fsgui_reports_them() {
        for (status, cause, back) in [
            (486, HangupCause::UserBusy, 486),
            (600, HangupCause::UserBusy, 486),
            (480, HangupCause::NoUserResponse, 480),
            (404, HangupCause::UnallocatedNumber, 404),
            (603, HangupCause::CallRejected, 603),
            (487, HangupCause::OriginatorCancel, 487),
            (488, HangupCause::IncompatibleDestination, 488),
            (408, HangupCause::RecoveryOnTimerExpire, 408),
            (503, HangupCause::NormalTemporaryFailure, 503),
        ] {
            assert_eq!(HangupCause::from_sip_status(status), cause, "{status}");
            assert_eq!(cause.sip_status(), back, "{cause}");
        }
        assert_eq!(HangupCause::NoAnswer.sip_status(), 480);
        assert_eq!(
            HangupCause::from_sip_status(599),
            HangupCause::NormalTemporaryFailure
        );
        assert_eq!(
            HangupCause::UserBusy.reason_header(),
            "Q.850;cause=17;text=\"USER_BUSY\""
        );
    }
}
