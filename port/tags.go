package port

// The external term format's tags that the engine reads or writes by hand
// (the decoder and the reply writer).
const (
	tagVersion       = 131
	tagSmallInteger  = 97  // SMALL_INTEGER_EXT
	tagInteger       = 98  // INTEGER_EXT
	tagAtom          = 100 // ATOM_EXT (OTP 25's atoms)
	tagSmallTuple    = 104 // SMALL_TUPLE_EXT
	tagNil           = 106 // NIL_EXT
	tagList          = 108 // LIST_EXT
	tagBinary        = 109 // BINARY_EXT
	tagSmallBig      = 110 // SMALL_BIG_EXT
	tagLargeBig      = 111 // LARGE_BIG_EXT
	tagSmallAtom     = 115 // SMALL_ATOM_EXT
	tagAtomUTF8      = 118 // ATOM_UTF8_EXT
	tagSmallAtomUTF8 = 119 // SMALL_ATOM_UTF8_EXT (OTP 26's atoms)
)
